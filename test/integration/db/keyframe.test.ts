import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readKeyframe, type KeyframeEntity } from '../../../server/replay/keyframe.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  hoursAgo,
  generateHistory,
  insertHistory,
  keyframeState,
  referenceState,
  type HistoryEvent,
} from '../../support/history.js';
import { REFRESH_AGGREGATE } from '../../../server/db/sql-fragments.js';

describe('readKeyframe', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(5, start, 3_600_000, 1500);
    await insertHistory(db.pool, events);
    await db.pool.query(REFRESH_AGGREGATE);
  });
  afterAll(() => db?.drop());

  it('streams the state at t in chunks of the asked size', async () => {
    const t = start + 1_800_000;
    const chunks = [];
    for await (const chunk of readKeyframe(db.pool, t * 1000, {}, { chunkSize: 7 })) chunks.push(chunk);
    const expected = referenceState(events, t);
    expect(expected.size).toBeGreaterThan(20);
    expect(chunks.slice(0, -1).every((c) => c.length === 7)).toBe(true);
    expect(keyframeState(chunks)).toEqual(expected);
  });

  it('cuts chunks short at the byte budget, losing nothing', async () => {
    const t = start + 2_700_000;
    const chunks = [];
    for await (const chunk of readKeyframe(db.pool, t * 1000, {}, { chunkSize: 50, chunkBytes: 400 })) {
      chunks.push(chunk);
    }
    const json = (chunk: KeyframeEntity[]) =>
      chunk.map((e) => e.table.length + e.id.length + e.state.text.length + 30);
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) {
      const sizes = json(chunk);
      // Only the entity that crossed the budget may end past it.
      expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(400);
    }
    expect(keyframeState(chunks)).toEqual(referenceState(events, t));
  });

  it('filters by table and by entity id', async () => {
    const t = start + 3_000_000;
    const chunks = [];
    for await (const chunk of readKeyframe(db.pool, t * 1000, {
      tables: ['city.vehicle'],
      entities: ['3', '5', '8', '13'],
    })) {
      chunks.push(chunk);
    }
    const expected = new Map(
      [...referenceState(events, t)].filter(([k]) => /^test\|city\|vehicle\|(3|5|8|13)$/.test(k)),
    );
    expect(keyframeState(chunks)).toEqual(expected);
  });

  it('is one plain query that the database streams: the layered function is inlined, no merge join', async () => {
    const t = start + 2_000_000;
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query('set local enable_mergejoin = off');
      const { rows: bounds } = await client.query<{ active: string }>(
        'select active from msr.keyframe_bounds(to_timestamp($1 / 1000.0))',
        [t],
      );
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(
        `explain select (s.last_event).after
           from msr.keyframe_bounds(to_timestamp($1 / 1000.0)) b,
                msr.entity_states_within_${bounds[0]!.active}(b.cutoff, b.tail_from, to_timestamp($1 / 1000.0)) s`,
        [t],
      );
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      // keyframe_bounds is a function scan of one row; the layers must not be one.
      expect(plan).not.toMatch(/Function Scan on entity_states_within/);
      expect(plan).toMatch(/Hash Full Join/);
      expect(plan).not.toMatch(/Merge/);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('holds no lock on the snapshot table the rotation rebuilds while it streams', async () => {
    const reader = readKeyframe(db.pool, (start + 2_000_000) * 1000, {}, { chunkSize: 2 });
    await reader.next();
    const { rows } = await db.pool.query<{ relname: string; active: string }>(
      `select c.relname, (select active from msr.snapshot_pointer) as active
         from pg_locks l join pg_class c on c.oid = l.relation
        where c.relname in ('earliest_snapshot_a', 'earliest_snapshot_b') and l.pid <> pg_backend_pid()`,
    );
    await reader.return(undefined);
    expect(rows.map((r) => r.relname)).toEqual([`earliest_snapshot_${rows[0]?.active}`]);
  });

  it('stops reading and frees its connection when aborted', async () => {
    const controller = new AbortController();
    let chunks = 0;
    for await (const _chunk of readKeyframe(
      db.pool,
      (start + 3_600_000) * 1000,
      {},
      { chunkSize: 2, signal: controller.signal },
    )) {
      chunks += 1;
      controller.abort();
    }
    expect(chunks).toBe(1);
    // The pool is whole again: every connection can be taken at once.
    const clients = await Promise.all(Array.from({ length: db.pool.options.max }, () => db.pool.connect()));
    clients.forEach((c) => c.release());
  });
});
