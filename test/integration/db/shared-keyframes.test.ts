import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyframeEntity } from '../../../server/replay/keyframe.js';
import { KeyframeReads } from '../../../server/replay/shared-keyframes.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  generateHistory,
  hoursAgo,
  insertHistory,
  keyframeState,
  referenceState,
  type HistoryEvent,
} from '../../support/history.js';
import { until } from '../../support/wait.js';
import { REFRESH_AGGREGATE } from '../../../server/db/sql-fragments.js';

describe('keyframe reads shared between sessions (single flight)', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);
  const t = start + 2_400_000;

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(11, start, 3_600_000, 1500);
    await insertHistory(db.pool, events);
    await db.pool.query(REFRESH_AGGREGATE);
  });
  afterAll(() => db?.drop());

  const drain = async (reader: AsyncGenerator<KeyframeEntity[]>) => {
    const chunks: KeyframeEntity[][] = [];
    for await (const chunk of reader) chunks.push(chunk);
    return chunks;
  };
  const counting = () => {
    const reads = { started: 0, joined: 0 };
    const keyframes = new KeyframeReads(db.pool, (shared) => (shared ? reads.joined++ : reads.started++));
    return { keyframes, reads };
  };

  it('serves eight callers at the same time from one read, each the whole keyframe', async () => {
    const { keyframes, reads } = counting();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => drain(keyframes.read(t * 1000, {}, { chunkSize: 5 }))),
    );
    expect(reads).toEqual({ started: 1, joined: 7 });
    const expected = referenceState(events, t);
    expect(expected.size).toBeGreaterThan(20);
    for (const chunks of results) expect(keyframeState(chunks)).toEqual(expected);
    expect(keyframes.underWay).toBe(0);
  });

  it('gives a caller that joins late every chunk from the first', async () => {
    const { keyframes, reads } = counting();
    const first = keyframes.read(t * 1000, {}, { chunkSize: 3 });
    const early = [
      (await first.next()).value as KeyframeEntity[],
      (await first.next()).value as KeyframeEntity[],
    ];
    const late = await drain(keyframes.read(t * 1000, {}, { chunkSize: 3 }));
    const rest = await drain(first);
    expect(reads).toEqual({ started: 1, joined: 1 });
    expect(keyframeState([...early, ...rest])).toEqual(referenceState(events, t));
    expect(keyframeState(late)).toEqual(referenceState(events, t));
  });

  it('reads apart for another time, another filter or once the read is over', async () => {
    const { keyframes, reads } = counting();
    const [a, b, c] = await Promise.all([
      drain(keyframes.read(t * 1000, {})),
      drain(keyframes.read((t + 60_000) * 1000, {})),
      drain(keyframes.read(t * 1000, { tables: ['city.vehicle'] })),
    ]);
    expect(reads).toEqual({ started: 3, joined: 0 });
    expect(keyframeState(a)).toEqual(referenceState(events, t));
    expect(keyframeState(b)).toEqual(referenceState(events, t + 60_000));
    expect([...keyframeState(c).keys()].every((k) => k.startsWith('test|city|vehicle|'))).toBe(true);
    await drain(keyframes.read(t * 1000, {}));
    expect(reads.started).toBe(4);
  });

  it('stops sharing a read that has gone past what it keeps for late callers', async () => {
    const { keyframes, reads } = counting();
    const first = keyframes.read(t * 1000, {}, { chunkSize: 1 });
    for (let i = 0; i < 20; i++) await first.next();
    const late = await drain(keyframes.read(t * 1000, {}, { chunkSize: 1 }));
    await drain(first);
    expect(reads).toEqual({ started: 2, joined: 0 });
    expect(keyframeState(late)).toEqual(referenceState(events, t));
  });

  it('stops the database read and frees its connection once every caller has gone', async () => {
    const { keyframes } = counting();
    const controllers = [new AbortController(), new AbortController()];
    const readers = controllers.map((c) => keyframes.read(t * 1000, {}, { chunkSize: 2, signal: c.signal }));
    for (const reader of readers) await reader.next();
    controllers.forEach((c) => c.abort());
    for (const reader of readers) expect((await reader.next()).done).toBe(true);
    expect(keyframes.underWay).toBe(0);
    // The pool is whole again: every connection can be taken at once.
    await until(
      'the read to give its connection back',
      async () => db.pool.idleCount + (db.pool.options.max - db.pool.totalCount) === db.pool.options.max,
      10_000,
      20,
    );
    const clients = await Promise.all(Array.from({ length: db.pool.options.max }, () => db.pool.connect()));
    clients.forEach((c) => c.release());
  });
});
