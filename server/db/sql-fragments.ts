// SQL spelled once: pieces of queries that several modules write into their own statements.

/**
 * The `schema.table` name the API uses for a stored row (cdc_event, a keyframe row), from the
 * columns of `alias` (none: unqualified columns).
 */
export const qualifiedTable = (alias?: string): string => {
  const column = (name: string) => (alias ? `${alias}.${name}` : name);
  return `${column('table_schema')} || '.' || ${column('table_name')}`;
};

/** A session's table filter: the text[] parameter is null (every table) or names the row's table. */
export const tableFilter = (param: string, alias?: string): string =>
  `(${param}::text[] is null or ${qualifiedTable(alias)} = any (${param}::text[]))`;

/** A session's entity filter on cdc_event rows: null (every entity), one of the ids, or a truncate. */
export const entityFilter = (param: string, alias: string): string =>
  `(${param}::text[] is null or ${alias}.entity_id = any (${param}::text[]) or ${alias}.op = 't')`;

/**
 * SQL for the timestamptz at a bigint of microseconds since the epoch, exact at any time PostgreSQL
 * holds: `bigint * interval` multiplies in double precision, which drops microseconds past 2^53 µs
 * (year 2255), so the whole seconds and the microseconds within them are added apart.
 */
export const timestampAtMicros = (us: string): string =>
  `(timestamptz 'epoch' + (${us} / 1000000) * interval '1 second' + (${us} % 1000000) * interval '1 microsecond')`;

/** Sessions that count against the limits: not closed, and their lease has not run out. */
export const ACTIVE_SESSION = 'closed_at is null and lease_until > now()';

/**
 * Brings msr.entity_last_states up to date and, on TimescaleDB, its links that keyframes read
 * (sql/022). Not inside a transaction block, as TimescaleDB's refresh.
 */
export const REFRESH_AGGREGATE = `call msr.refresh_entity_states()`;
