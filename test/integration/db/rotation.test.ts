import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../server/logger.js';
import { AdvisoryLock } from '../../../server/db/locks.js';
import { rotate } from '../../../server/maintenance/rotation.js';
import { Metrics } from '../../../server/metrics.js';
import { clockFaked, createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  generateHistory,
  insertHistory,
  referenceState,
  sqlState,
  type HistoryEvent,
} from '../../support/history.js';

// Maintenance on whichever dialect this project runs: the earliest snapshot moves to the
// retention cutoff, whole days (partitions or chunks) before it go, and the state at every time
// from the cutoff on stays exactly what the raw events say.

const DAY = 86_400_000;
const log = createLogger('silent');

describe('maintenance: snapshot rotation and retention', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const metrics = new Metrics();
  const now = Date.now();
  const pointer = async () =>
    (
      await db.pool.query<{ active: string; cutoff: number; last_refresh: Date | null }>(
        `select active, (extract(epoch from cutoff_time) * 1000)::float8 as cutoff, last_refresh from msr.snapshot_pointer`,
      )
    ).rows[0]!;
  const count = async (where: string, params: unknown[] = []) =>
    (await db.pool.query(`select count(*)::int as n from msr.cdc_event where ${where}`, params)).rows[0]
      .n as number;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(
      `insert into msr.configuration (key, value) values ('MAX_PLAYBACK_RANGE', '3')
       on conflict (key) do update set value = excluded.value`,
    );
    await db.pool.query(`select msr.prepare_storage(current_date - 11, current_date + 1)`);
    // Nine days of history up to a minute ago; the last three days stay replayable.
    events = generateHistory(23, now - 9 * DAY, 9 * DAY - 60_000, 3000);
    await insertHistory(db.pool, events);
  });
  afterAll(() => db?.drop());

  it('moves the snapshot to the cutoff, drops the days before it, and keeps every later state exact', async () => {
    const before = await pointer();
    expect(before.cutoff).toBe(-Infinity);
    const result = await rotate(db.pool, log, metrics);
    expect(result.ran).toBe(true);
    const cutoff = result.cutoff!;
    expect(cutoff).toBeLessThanOrEqual(now - 3 * DAY + 60_000);
    expect(cutoff).toBeGreaterThan(now - 3 * DAY - 16 * 60_000);
    const after = await pointer();
    expect(after.active).not.toBe(before.active);
    expect(after.cutoff).toBe(cutoff);
    expect(Date.now() - after.last_refresh!.getTime()).toBeLessThan(60_000);

    // Whole days before the cutoff's day are gone; the cutoff's own day keeps its early rows.
    const cutoffDay = Math.floor(cutoff / DAY) * DAY;
    expect(result.droppedUnits).toBeGreaterThanOrEqual(5);
    expect(await count(`event_timestamp < $1`, [new Date(cutoffDay)])).toBe(0);
    const kept = events.filter((e) => e.ts >= cutoffDay).length;
    expect(await count('true')).toBe(kept);

    for (const t of [cutoff, cutoff + 3_600_000, now - DAY, now - 60_000]) {
      expect(await sqlState(db.pool, t), `state at ${new Date(t).toISOString()}`).toEqual(
        referenceState(events, t),
      );
    }
    expect((await metrics.maintenanceRuns.get()).values).toContainEqual(
      expect.objectContaining({ labels: { result: 'ok' }, value: 1 }),
    );
  });

  it('lets one server at a time run it', async () => {
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query(`select pg_advisory_lock($1)`, [AdvisoryLock.MAINTENANCE]);
      expect(await rotate(db.pool, log, metrics)).toEqual({ ran: false });
    } finally {
      await other.end();
    }
  });

  it.skipIf(clockFaked)(
    'leaves the previous snapshot active when a run fails (needs lock_timeout: not under faketime)',
    async () => {
      const before = await pointer();
      const inactive = before.active === 'a' ? 'earliest_snapshot_b' : 'earliest_snapshot_a';
      const other = new pg.Client({ connectionString: db.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query(`lock table msr.${inactive} in access exclusive mode`);
        await expect(
          rotate(db.pool, log, metrics, { lockTimeoutMs: 300, lockAttempts: 2, lockRetryMs: 50 }),
        ).rejects.toThrow(/lock timeout/);
      } finally {
        await other.query('rollback');
        await other.end();
      }
      const after = await pointer();
      expect([after.active, after.cutoff]).toEqual([before.active, before.cutoff]);
      expect((await metrics.maintenanceRuns.get()).values).toContainEqual(
        expect.objectContaining({ labels: { result: 'failed' }, value: 1 }),
      );
      // The next run succeeds and flips.
      expect((await rotate(db.pool, log, metrics)).active).not.toBe(before.active);
    },
  );
});
