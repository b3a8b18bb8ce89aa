import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  generateHistory,
  insertHistory,
  referenceState,
  sqlState,
  type HistoryEvent,
} from '../../support/history.js';
import { REFRESH_AGGREGATE } from '../../../server/db/sql-fragments.js';

// refresh_earliest_snapshot rebuilds the inactive table as the state at the cutoff and flips the
// pointer; replay after the cutoff then reads the snapshot and stays exact.

const DAY = 86_400_000;

describe('msr.refresh_earliest_snapshot()', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const now = Date.now();
  // Events from 3 days ago to now, with MAX_PLAYBACK_RANGE = 2 days: the cutoff falls inside.
  const start = now - 3 * DAY;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(`update msr.configuration set value = '2' where key = 'MAX_PLAYBACK_RANGE'`);
    events = generateHistory(11, start, 3 * DAY - 60_000, 3000);
    await insertHistory(db.pool, events);
  });
  afterAll(() => db?.drop());

  const pointer = async () =>
    (
      await db.pool.query<{ active: string; cutoff_time: Date; last_refresh: Date | null }>(
        `select active, cutoff_time, last_refresh from msr.snapshot_pointer`,
      )
    ).rows[0]!;

  const snapshotRows = async (table: string) =>
    new Map(
      (
        await db.pool.query<{ key: string; after: unknown }>(
          `select source || '|' || table_schema || '|' || table_name || '|' || entity_id as key, (last_event).after as after
             from msr.${table}`,
        )
      ).rows.map((r) => [r.key, r.after]),
    );

  it('starts with snapshot a active and no cutoff', async () => {
    const p = await pointer();
    expect(p.active).toBe('a');
    expect(p.last_refresh).toBeNull();
  });

  it('flips to b, holding the state at the bucket-aligned cutoff', async () => {
    const before = Date.now();
    await db.pool.query(`select msr.refresh_earliest_snapshot()`);
    const p = await pointer();
    expect(p.active).toBe('b');
    const cutoff = p.cutoff_time.getTime();
    expect(cutoff % (15 * 60_000)).toBe(0);
    expect(cutoff).toBeLessThanOrEqual(before - 2 * DAY);
    expect(cutoff).toBeGreaterThan(before - 2 * DAY - 15 * 60_000 - 5_000);
    expect(p.last_refresh!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    // State made by every event strictly before the cutoff.
    const expected = referenceState(events, cutoff - 0.001);
    expect(expected.size).toBeGreaterThan(10);
    expect(await snapshotRows('earliest_snapshot_b')).toEqual(expected);
  });

  it('replays exactly after the cutoff on top of the snapshot', async () => {
    const { cutoff_time } = await pointer();
    for (const offset of [0, 1, 60_000, 3_600_000, DAY / 2]) {
      const t = cutoff_time.getTime() + offset;
      expect(await sqlState(db.pool, t), `at cutoff + ${offset} ms`).toEqual(referenceState(events, t));
    }
  });

  it('flips back to a on the next run, built from snapshot b, the aggregate and the tail', async () => {
    await db.pool.query(REFRESH_AGGREGATE);
    await db.pool.query(`select msr.refresh_earliest_snapshot()`);
    const p = await pointer();
    expect(p.active).toBe('a');
    expect(await snapshotRows('earliest_snapshot_a')).toEqual(
      referenceState(events, p.cutoff_time.getTime() - 0.001),
    );
  });

  it('never moves the cutoff back when the range grows', async () => {
    const { cutoff_time } = await pointer();
    await db.pool.query(`update msr.configuration set value = '30' where key = 'MAX_PLAYBACK_RANGE'`);
    await db.pool.query(`select msr.refresh_earliest_snapshot()`);
    expect((await pointer()).cutoff_time.getTime()).toBe(cutoff_time.getTime());
  });
});
