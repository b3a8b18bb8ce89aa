import type { EntityFilter } from './entity-filter.js';
import type { Pool } from 'pg';
import Cursor from 'pg-cursor';
import { JsonText, type KeyframeTextEntity } from './outgoing.js';
import { sqlAt, type Micros } from './micros.js';
import { qualifiedTable } from '../db/sql-fragments.js';

export type KeyframeEntity = KeyframeTextEntity;

export const KEYFRAME_CHUNK = 1000;
/** Rows asked of the cursor at once after the first chunk: fewer round trips for large keyframes. */
const FETCH_ROWS = 5000;
/** A chunk is cut short past this many bytes of JSON, so large states still come in bounded parts. */
export const KEYFRAME_CHUNK_BYTES = 256 * 1024;

// As text: a Date would drop the microseconds of a bound (and cannot hold -infinity).
const BOUNDS_SQL = `select cutoff::text, active, tail_from::text from msr.keyframe_bounds(${sqlAt('$1')})`;

// msr.entity_states_within_<snapshot> is inlined into this query, so the cursor hands out rows as
// the database produces them instead of after the whole keyframe is computed.
const keyframeSql = (snapshot: 'a' | 'b') => `
  select ${qualifiedTable('s')} as "table", s.entity_id as id, (s.last_event).after::text as state
    from msr.entity_states_within_${snapshot}($1::timestamptz, $2::timestamptz, ${sqlAt('$3')}, $4::text[]) s
   where $5::text[] is null or s.entity_id = any ($5::text[])`;
const KEYFRAME_SQL = { a: keyframeSql('a'), b: keyframeSql('b') } as const;

// The layers join on four text columns. The planner prices sorting them for a merge join far below
// what it costs (on the 10,000-vehicle city, about 100 ms against 60 ms for the whole keyframe by
// hash joins), and a merge join would also hold every row back until its sort is done.
const PLANNER_SQL = 'set local enable_mergejoin = off';

interface Bounds {
  readonly cutoff: string;
  readonly active: 'a' | 'b';
  readonly tail_from: string;
}

/** table, id, state: as arrays, pg builds no object with named keys per row. */
type KeyframeRow = [table: string, id: string, state: string];

/** One read's rows as chunks of at most `size` entities and about `maxBytes` of JSON. */
function* chunked(rows: readonly KeyframeRow[], size: number, maxBytes: number): Generator<KeyframeEntity[]> {
  let chunk: KeyframeEntity[] = [];
  let bytes = 0;
  for (const [table, id, state] of rows) {
    chunk.push({ table, id, state: new JsonText(state) });
    // The JSON around an entity is 30 bytes; states are ASCII but for a few names.
    bytes += 30 + table.length + id.length + state.length;
    if (chunk.length >= size || bytes >= maxBytes) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * The state of every entity matching the filter at replay time t (epoch microseconds), in chunks of
 * at most chunkSize entities and about chunkBytes of JSON, read through a server-side cursor as the
 * database produces them, so a keyframe of 100,000 entities never sits whole in memory and its first
 * chunk leaves early. The bounds and the layers are read in one repeatable-read transaction: a
 * refresh or rotation between the two cannot mix their views.
 * Aborting the signal closes the cursor and ends the iteration.
 */
export async function* readKeyframe(
  pool: Pool,
  t: Micros,
  filter: EntityFilter = {},
  options: { chunkSize?: number; chunkBytes?: number; signal?: AbortSignal } = {},
): AsyncGenerator<KeyframeEntity[]> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin isolation level repeatable read read only');
    await client.query(PLANNER_SQL);
    const bounds = (await client.query<Bounds>(BOUNDS_SQL, [t])).rows[0]!;
    const cursor = client.query(
      new Cursor<KeyframeRow>(
        KEYFRAME_SQL[bounds.active],
        [bounds.cutoff, bounds.tail_from, t, filter.tables ?? null, filter.entities ?? null],
        { rowMode: 'array' },
      ),
    );
    const size = options.chunkSize ?? KEYFRAME_CHUNK;
    const maxBytes = options.chunkBytes ?? KEYFRAME_CHUNK_BYTES;
    // The first read is one chunk, so the first part leaves early; later reads are larger, since
    // each read is a round trip, and are cut into chunks here. The next read is asked for before
    // this one's chunks are handed out, so the database works while the caller sends them.
    let asked = size;
    let next = cursor.read(asked);
    try {
      for (;;) {
        const rows = await next;
        if (rows.length === 0 || options.signal?.aborted) return;
        const more = rows.length === asked;
        asked = size * Math.ceil(FETCH_ROWS / size);
        next = more ? cursor.read(asked) : Promise.resolve([]);
        yield* chunked(rows, size, maxBytes);
      }
    } finally {
      await next.catch(() => undefined);
      await cursor.close().catch(() => undefined);
    }
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    if (!broken) await client.query('commit').catch((err: Error) => (broken = err));
    client.release(broken);
  }
}
