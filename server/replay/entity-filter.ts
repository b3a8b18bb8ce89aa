import type { Change } from '@msr/protocol/messages';

/** What a session replays: some tables, some entities, or everything. */
export interface EntityFilter {
  /** `schema.table` names; absent: every table. */
  readonly tables?: readonly string[] | undefined;
  /** Entity ids; absent: every entity. */
  readonly entities?: readonly string[] | undefined;
}

/**
 * Whether a change passes the filter, as the SQL filters (sql-fragments.ts) decide for rows read
 * from the database: a truncate passes the entity filter, since it clears every entity of its table.
 */
export function filterMatches(
  filter: EntityFilter,
  table: string,
  entity: string,
  op: Change['op'],
): boolean {
  if (filter.tables && !filter.tables.includes(table)) return false;
  return !filter.entities || op === 't' || filter.entities.includes(entity);
}
