import type { Pool, PoolClient } from 'pg';
import Cursor from 'pg-cursor';
import { sqlAt, type Micros } from './micros.js';

export interface KeyframeEntity {
  readonly table: string;
  readonly id: string;
  readonly state: Record<string, unknown>;
}

export interface EntityFilter {
  /** `schema.table` names; absent: every table. */
  readonly tables?: readonly string[] | undefined;
  /** Entity ids; absent: every entity. */
  readonly entities?: readonly string[] | undefined;
}

export const KEYFRAME_CHUNK = 1000;

const KEYFRAME_SQL = `
  select s.table_schema || '.' || s.table_name as "table", s.entity_id as id, (s.last_event).after as state
    from msr.entity_states_at(${sqlAt('$1')}, $2::text[]) s
   where $3::text[] is null or s.entity_id = any ($3::text[])`;

/**
 * The state of every entity matching the filter at replay time t (epoch microseconds), in chunks read
 * through a server-side cursor, so a keyframe of 100,000 entities never sits whole in memory.
 * Aborting the signal closes the cursor and ends the iteration.
 */
export async function* readKeyframe(
  db: Pool | PoolClient,
  t: Micros,
  filter: EntityFilter = {},
  options: { chunkSize?: number; signal?: AbortSignal } = {},
): AsyncGenerator<KeyframeEntity[]> {
  const client = 'release' in db ? db : await db.connect();
  const owned = client !== db;
  const cursor = client.query(
    new Cursor<KeyframeEntity>(KEYFRAME_SQL, [t, filter.tables ?? null, filter.entities ?? null]),
  );
  try {
    for (;;) {
      if (options.signal?.aborted) return;
      const rows = await cursor.read(options.chunkSize ?? KEYFRAME_CHUNK);
      if (rows.length === 0) return;
      yield rows;
    }
  } finally {
    await cursor.close().catch(() => undefined);
    if (owned) (client as PoolClient).release();
  }
}
