import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readKeyframe } from '../../../server/replay/keyframe.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  hoursAgo,
  generateHistory,
  insertHistory,
  referenceState,
  type HistoryEvent,
} from '../../support/history.js';

describe('readKeyframe', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(5, start, 3_600_000, 1500);
    await insertHistory(db.pool, events);
    await db.pool.query(`call refresh_continuous_aggregate('msr.entity_last_states', null, null)`);
  });
  afterAll(() => db?.drop());

  const asMap = (chunks: { table: string; id: string; state: unknown }[][]) =>
    new Map(chunks.flat().map((e) => [`test|${e.table.replace('.', '|')}|${e.id}`, e.state]));

  it('streams the state at t in chunks of the asked size', async () => {
    const t = start + 1_800_000;
    const chunks = [];
    for await (const chunk of readKeyframe(db.pool, t * 1000, {}, { chunkSize: 7 })) chunks.push(chunk);
    const expected = referenceState(events, t);
    expect(expected.size).toBeGreaterThan(20);
    expect(chunks.slice(0, -1).every((c) => c.length === 7)).toBe(true);
    expect(asMap(chunks)).toEqual(expected);
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
    expect(asMap(chunks)).toEqual(expected);
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
