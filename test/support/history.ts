import type pg from 'pg';
import type { KeyframeEntity } from '../../server/replay/keyframe.js';

/** A change as the tests write it into msr.cdc_event and fold it independently. */
export interface HistoryEvent {
  id?: number;
  /** The entity's state just before this event in replay order, as REPLICA IDENTITY FULL gives it. */
  before?: Record<string, unknown> | null;
  ts: number;
  source: string;
  schema: string;
  table: string;
  entityId: string;
  op: 'c' | 'u' | 'd' | 'r' | 't';
  after: Record<string, unknown> | null;
  lsn: number | null;
  offset: number | null;
}

const HOUR_MS = 3_600_000;

/**
 * The start of the hour `hours` before now. Test histories start here, never at a fixed date: a
 * history must stay inside the retention window (MAX_PLAYBACK_RANGE days back) whatever the day.
 */
export function hoursAgo(hours: number): number {
  return Math.floor(Date.now() / HOUR_MS) * HOUR_MS - hours * HOUR_MS;
}

/** Creates the storage (daily partitions or chunks) for the days from `from` to `to` (epoch ms). */
export async function prepareStorageFor(pool: pg.Pool, from: number, to: number): Promise<void> {
  await pool.query('select msr.prepare_storage($1::date, $2::date)', [
    new Date(from).toISOString().slice(0, 10),
    new Date(to).toISOString().slice(0, 10),
  ]);
}

/** Small deterministic PRNG (mulberry32), so a failing seed can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random history over [start, start + spanMs]: creates, updates, deletes and re-creates over two
 * tables, events sharing a timestamp (ties broken by LSN), some without LSN, and truncates.
 */
export function generateHistory(seed: number, start: number, spanMs: number, count: number): HistoryEvent[] {
  const rnd = random(seed);
  const tables = ['vehicle', 'incident'];
  const alive = new Set<string>();
  const events: HistoryEvent[] = [];
  let ts = start;
  let lsn = 1000;
  for (let i = 0; i < count; i++) {
    // The first event is at `start`; about a third of the others share the previous timestamp.
    if (rnd() > 0.33 && i > 0) ts += Math.floor(rnd() * ((2 * spanMs) / count));
    ts = Math.min(ts, start + spanMs);
    const table = tables[Math.floor(rnd() * tables.length)]!;
    lsn += 1 + Math.floor(rnd() * 5);
    const roll = rnd();
    if (roll < 0.004) {
      events.push({
        ts,
        source: 'test',
        schema: 'city',
        table,
        entityId: '',
        op: 't',
        after: null,
        lsn,
        offset: null,
      });
      for (const key of [...alive]) if (key.startsWith(`${table}|`)) alive.delete(key);
      continue;
    }
    const entityId = String(1 + Math.floor(rnd() * 60));
    const key = `${table}|${entityId}`;
    let op: HistoryEvent['op'];
    if (!alive.has(key)) op = rnd() < 0.2 ? 'r' : 'c';
    else op = rnd() < 0.1 ? 'd' : 'u';
    if (op === 'd') alive.delete(key);
    else alive.add(key);
    events.push({
      ts,
      source: 'test',
      schema: 'city',
      table,
      entityId,
      op,
      after: op === 'd' ? null : { id: entityId, n: i, label: `${table}-${entityId}-${i}` },
      lsn: rnd() < 0.1 ? null : lsn,
      offset: null,
    });
  }
  addBeforeImages(events);
  return events;
}

/** Sets each event's before image to its entity's state just before it, in replay order. */
function addBeforeImages(events: HistoryEvent[]): void {
  const order = events
    .map((e, index) => ({ e, index }))
    .sort((a, b) => a.e.ts - b.e.ts || (a.e.lsn ?? -1) - (b.e.lsn ?? -1) || a.index - b.index);
  const state = new Map<string, Record<string, unknown> | null>();
  for (const { e } of order) {
    const tableKey = `${e.source}|${e.schema}|${e.table}|`;
    if (e.op === 't') {
      e.before = null;
      for (const key of [...state.keys()]) if (key.startsWith(tableKey)) state.delete(key);
      continue;
    }
    e.before = state.get(tableKey + e.entityId) ?? null;
    state.set(tableKey + e.entityId, e.op === 'd' ? null : e.after);
  }
}

export async function insertHistory(pool: pg.Pool, events: HistoryEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 2000) {
    const chunk = events.slice(i, i + 2000);
    const { rows } = await pool.query<{ id: string }>(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after, lsn, kafka_offset, before)
       select to_timestamp(ts / 1000.0), source, schema, tab, entity, op, after, lsn, kafka_offset, before
         from unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::bigint[], $9::bigint[], $10::jsonb[])
              with ordinality as u(ts, source, schema, tab, entity, op, after, lsn, kafka_offset, before, n)
        order by n
       returning id`,
      [
        chunk.map((e) => e.ts),
        chunk.map((e) => e.source),
        chunk.map((e) => e.schema),
        chunk.map((e) => e.table),
        chunk.map((e) => e.entityId),
        chunk.map((e) => e.op),
        chunk.map((e) => (e.after === null ? null : JSON.stringify(e.after))),
        chunk.map((e) => e.lsn),
        chunk.map((e) => e.offset),
        chunk.map((e) => (e.before ? JSON.stringify(e.before) : null)),
      ],
    );
    // RETURNING follows the insert order here because the SELECT is ordered.
    rows.forEach((row, j) => {
      chunk[j]!.id = Number(row.id);
    });
  }
}

/**
 * The state at t computed from the events alone, independently of the SQL: apply every event with
 * ts <= t in (ts, lsn, offset, id) order; 'd' deletes, 't' clears its table.
 */
export function referenceState(events: readonly HistoryEvent[], t: number): Map<string, unknown> {
  const ordered = events
    .filter((e) => e.ts <= t)
    .sort(
      (a, b) =>
        a.ts - b.ts || (a.lsn ?? -1) - (b.lsn ?? -1) || (a.offset ?? -1) - (b.offset ?? -1) || a.id! - b.id!,
    );
  const state = new Map<string, unknown>();
  for (const e of ordered) {
    const tableKey = `${e.source}|${e.schema}|${e.table}|`;
    if (e.op === 't') {
      for (const key of [...state.keys()]) if (key.startsWith(tableKey)) state.delete(key);
    } else if (e.op === 'd') {
      state.delete(tableKey + e.entityId);
    } else {
      state.set(tableKey + e.entityId, e.after);
    }
  }
  return state;
}

/** msr.entity_states_at(t) as the same map shape. */
export async function sqlState(pool: pg.Pool, t: number, tables?: string[]): Promise<Map<string, unknown>> {
  const { rows } = await pool.query<{ key: string; after: unknown }>(
    `select source || '|' || table_schema || '|' || table_name || '|' || entity_id as key, (last_event).after as after
       from msr.entity_states_at(to_timestamp($1 / 1000.0), $2)`,
    [t, tables ?? null],
  );
  return new Map(rows.map((r) => [r.key, r.after]));
}

/** Keyframe chunks of the history's source ('test') as the same map shape. */
export function keyframeState(chunks: readonly KeyframeEntity[][]): Map<string, unknown> {
  return new Map(chunks.flat().map((e) => [`test|${e.table.replace('.', '|')}|${e.id}`, e.state.value()]));
}

/**
 * Writes one change of `ops.unit` (source `live`) at `ts` now, as a live writer would, and keeps it
 * in `events` with its stored id, so referenceState folds it like the rest.
 */
export async function writeLiveChange(
  pool: pg.Pool,
  events: HistoryEvent[],
  ts: number,
  entityId: string,
  op: HistoryEvent['op'],
  after: Record<string, unknown> | null,
): Promise<void> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
     values (to_timestamp($1 / 1000.0), 'live', 'ops', 'unit', $2, $3, $4) returning id`,
    [ts, entityId, op, after],
  );
  events.push({
    id: Number(rows[0]!.id),
    ts,
    source: 'live',
    schema: 'ops',
    table: 'unit',
    entityId,
    op,
    after,
    lsn: null,
    offset: null,
  });
}
