import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { FrameMessage } from '@msr/protocol/messages';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { rotate } from '../../server/maintenance/rotation.js';
import { Metrics } from '../../server/metrics.js';
import { clockFaked, createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, hoursAgo, insertHistory, prepareStorageFor } from '../support/history.js';
import { connect, keyframeDone } from '../support/replay.js';
import { startMsr } from '../../scripts/services/msr.js';

// Maintenance drops whole days while something holds a read lock on the event table (a pg_dump
// does, for as long as it runs). Its lock requests queue every reader behind them, so each waits at
// most the short lock timeout, then gives way and tries again: a playing session never stalls for
// long. (It used to wait 60 s, and replay with it.) Needs lock_timeout to fire: not under faketime.
const log = createLogger('silent');
const HOUR = 3_600_000;

describe.skipIf(clockFaked)(
  'maintenance under a held read lock (needs lock_timeout: not under faketime)',
  () => {
    let db: TestDatabase;
    let app: App | undefined;
    let holder: pg.Client | undefined;
    afterAll(async () => {
      await holder?.end().catch(() => undefined);
      await app?.stop();
      await db?.drop();
    });

    it('keeps a playing session on time while it waits, then drops the old day', async () => {
      db = await createTestDatabase();
      const old = hoursAgo(10 * 24);
      await prepareStorageFor(db.pool, old, old);
      await insertHistory(db.pool, generateHistory(5, old, HOUR, 200));
      const start = hoursAgo(2);
      await insertHistory(db.pool, generateHistory(6, start, HOUR, 36_000));
      app = await startMsr(db.url, { DB_POOL_SIZE: '4', CLEANUP_SERVICE_ENABLED: 'false' }, { log });
      const client = await connect(app.port);
      const keyframe = keyframeDone(client);
      await client.open({ from: start, to: start + HOUR, at: start + 60_000 });
      await keyframe;
      const arrivals: { wall: number; t: number }[] = [];
      client.on((m) => {
        if (m.type === 'frame') arrivals.push({ wall: Date.now(), t: (m as FrameMessage).t });
      });
      await client.play();
      await new Promise((r) => setTimeout(r, 1_000));

      // A reader that holds its lock for 4 s, as a dump would.
      holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
      await holder.query('begin');
      await holder.query('lock table msr.cdc_event in access share mode');
      await holder.query('select count(*) from msr.cdc_event');
      const rotation = rotate(app.pool, log, new Metrics(), { lockRetryMs: 300 });
      await new Promise((r) => setTimeout(r, 4_000));
      await holder.query('commit');
      const result = await rotation;
      await new Promise((r) => setTimeout(r, 1_000));
      await client.pause();

      expect(result.ran).toBe(true);
      expect(result.droppedUnits).toBeGreaterThanOrEqual(1);
      const { rows } = await db.pool.query(
        `select count(*)::int as n from msr.cdc_event where event_timestamp < now() - interval '8 days'`,
      );
      expect(rows[0].n).toBe(0);
      // A stalled session sends nothing, then catches up with one frame: the gap between frames
      // shows the stall (about 0.1 s apart here: ten changes a second).
      const gaps = arrivals.slice(1).map((a, i) => a.wall - arrivals[i]!.wall);
      const longest = Math.max(...gaps);
      console.log(
        `maintenance under a held lock (${process.env.MSR_TEST_DIALECT}): longest pause between frames ${longest} ms over ${arrivals.length} frames`,
      );
      expect(arrivals.length).toBeGreaterThan(40);
      expect(longest).toBeLessThan(1_000);
    });
  },
);
