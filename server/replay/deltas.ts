import type { Pool } from 'pg';
import { stateOf, type ChangeText } from './outgoing.js';
import type { EntityFilter } from './entity-filter.js';
import { sqlAt, sqlMicros, type Micros } from './micros.js';
import { entityFilter, qualifiedTable, tableFilter } from '../db/sql-fragments.js';

export interface DeltaWindow {
  /** Changes in replay order (reverse: newest first, already inverted). */
  readonly changes: ChangeText[];
  /** Replay time the changes bring the state to. */
  readonly reached: Micros;
  /** msr.cdc_event ids of the events read (live-follow uses them to recognise late rows). */
  readonly ids: string[];
}

interface DeltaRow {
  ts_us: string;
  event_id: string;
  table: string;
  id: string;
  op: ChangeText['op'];
  before: string | null;
  after: string | null;
}

const windowSql = (direction: 'asc' | 'desc') => `
  select ${sqlMicros('e.event_timestamp')} as ts_us, e.id::text as event_id,
         ${qualifiedTable('e')} as "table", e.entity_id as id, e.op,
         ${direction === 'asc' ? 'null' : 'e.before::text'} as before, ${direction === 'asc' ? 'e.after::text' : 'null'} as after
    from msr.cdc_event e
   where e.event_timestamp > ${sqlAt('$1')} and e.event_timestamp <= ${sqlAt('$2')}
     and ${tableFilter('$3', 'e')}
     and ${entityFilter('$4', 'e')}
   order by e.event_timestamp ${direction}, coalesce(e.lsn, -1) ${direction},
            coalesce(e.kafka_offset, -1) ${direction}, e.id ${direction}
   limit $5`;

const FORWARD_SQL = windowSql('asc');
const REVERSE_SQL = windowSql('desc');

/**
 * The changes between two replay times as short paged queries: each read borrows a pooled
 * connection for one query, so every session shares the fixed pool and nothing stays open
 * between frames. A read never stops inside a group of events with the same timestamp, so
 * every window ends on a state the SQL definition gives for some time.
 *
 * Forward (to > from): events in (from, to], after images. Reverse (to < from): events in
 * (to, from] newest first, inverted with their before images: an update goes back to its before
 * image, a create or snapshot read disappears, a delete comes back, and a truncate restores the
 * table as it was just before it.
 */
export async function readDeltas(
  pool: Pool,
  from: Micros,
  to: Micros,
  filter: EntityFilter,
  limit: number,
): Promise<DeltaWindow> {
  const forward = to >= from;
  const [lo, hi] = forward ? [from, to] : [to, from];
  const params = [lo, hi, filter.tables ?? null, filter.entities ?? null];
  let { rows } = await pool.query<DeltaRow>(forward ? FORWARD_SQL : REVERSE_SQL, [...params, limit]);
  let reached = to;
  const last = rows.at(-1);
  if (rows.length === limit && last) {
    // Finish the group of events sharing the last timestamp, then stop there.
    const edge = Number(last.ts_us);
    const seen = new Set(rows.map((r) => r.event_id));
    const group = await pool.query<DeltaRow>(forward ? FORWARD_SQL : REVERSE_SQL, [
      edge - 1,
      edge,
      ...params.slice(2),
      1_000_000,
    ]);
    rows = rows.concat(group.rows.filter((r) => !seen.has(r.event_id)));
    reached = forward ? edge : edge - 1;
  }
  const changes: ChangeText[] = [];
  for (const row of rows) {
    const ts = Number(row.ts_us) / 1000;
    if (forward) {
      changes.push(
        row.op === 'd' || row.op === 't'
          ? { table: row.table, id: row.id, op: row.op, ts }
          : { table: row.table, id: row.id, op: row.op, ts, state: stateOf(row.after) },
      );
    } else if (row.op === 't') {
      changes.push(...(await restoreTruncatedTable(pool, row, ts, filter)));
    } else {
      changes.push(await undo(pool, row, ts));
    }
  }
  return { changes, reached, ids: rows.map((r) => r.event_id) };
}

/**
 * Undoing one change: the entity goes back to its before image, or away when it had none. An
 * update without a before image (a table without REPLICA IDENTITY FULL) is looked up instead.
 */
async function undo(pool: Pool, row: DeltaRow, ts: number): Promise<ChangeText> {
  let before = row.before;
  if (before === null && row.op === 'u') {
    const { rows } = await pool.query<{ state: string | null }>(
      `select (s.last_event).after::text as state
         from msr.entity_states_at(${sqlAt('$1')}, array[$2::text]) s
        where s.entity_id = $3`,
      [Number(row.ts_us) - 1, row.table, row.id],
    );
    before = rows[0]?.state ?? null;
  }
  if (before === null) return { table: row.table, id: row.id, op: 'd', ts };
  return { table: row.table, id: row.id, op: row.op === 'd' ? 'c' : 'u', ts, state: stateOf(before) };
}

/** Undoing a truncate: clear the table, then its entities as they were just before it ('r'). */
async function restoreTruncatedTable(
  pool: Pool,
  truncate: DeltaRow,
  ts: number,
  filter: EntityFilter,
): Promise<ChangeText[]> {
  const { rows } = await pool.query<{ id: string; state: string | null }>(
    `select s.entity_id as id, (s.last_event).after::text as state
       from msr.entity_states_at(${sqlAt('$1')}, array[$2::text]) s
      where $3::text[] is null or s.entity_id = any ($3::text[])`,
    [Number(truncate.ts_us) - 1, truncate.table, filter.entities ?? null],
  );
  return [
    { table: truncate.table, id: '', op: 't', ts },
    ...rows.map((r) => ({ table: truncate.table, id: r.id, op: 'r' as const, ts, state: stateOf(r.state) })),
  ];
}
