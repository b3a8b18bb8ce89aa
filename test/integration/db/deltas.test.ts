import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyChange } from '@msr/protocol';
import { readDeltas } from '../../../server/replay/deltas.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  hoursAgo,
  generateHistory,
  insertHistory,
  referenceState,
  type HistoryEvent,
} from '../../support/history.js';
import { asClientKeys, asWireChange } from '../../support/replay.js';

// Window reads on both dialects: walking forward or backward in small windows from an exact state
// keeps it exact after every window, through ties, deletes, re-creates and truncates.

describe('readDeltas', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);
  const span = 3_600_000;

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(23, start, span, 1200);
    await insertHistory(db.pool, events);
  });
  afterAll(() => db?.drop());

  const walk = async (from: number, to: number, limit: number) => {
    const state = new Map(asClientKeys(referenceState(events, from)) as Map<string, Record<string, unknown>>);
    let position = from * 1000;
    let windows = 0;
    while (position !== to * 1000) {
      const window = await readDeltas(db.pool, position, to * 1000, {}, limit);
      for (const change of window.changes) applyChange(state, asWireChange(change));
      expect(state, `after window ${windows} at ${window.reached}`).toEqual(
        asClientKeys(referenceState(events, window.reached / 1000)),
      );
      expect(window.reached).not.toBe(position);
      position = window.reached;
      windows += 1;
    }
    return windows;
  };

  it('forward in windows of 25 events', async () => {
    expect(await walk(start, start + span, 25)).toBeGreaterThan(20);
  });

  it('backward in windows of 25 events', async () => {
    expect(await walk(start + span, start, 25)).toBeGreaterThan(20);
  });

  it('filters by table and entity, keeping truncates of the kept tables', async () => {
    const window = await readDeltas(
      db.pool,
      start * 1000,
      (start + span) * 1000,
      { tables: ['city.vehicle'], entities: ['7'] },
      10_000,
    );
    expect(window.changes.length).toBeGreaterThan(0);
    expect(window.changes.every((c) => c.table === 'city.vehicle' && (c.id === '7' || c.op === 't'))).toBe(
      true,
    );
    const expected = events.filter((e) => e.table === 'vehicle' && (e.entityId === '7' || e.op === 't'));
    expect(window.changes).toHaveLength(expected.length);
  });
});
