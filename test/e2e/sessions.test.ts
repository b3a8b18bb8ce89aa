import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplayClient } from '@msr/protocol';
import { CloseCode } from '@msr/protocol/codes';
import type { Speed } from '@msr/protocol/messages';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { DEFAULT_LIMITS, type PlayerLimits } from '../../server/replay/player.js';
import { decodeResumeToken } from '../../server/replay/resume.js';
import { until } from '../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, insertHistory, referenceState, type HistoryEvent } from '../support/history.js';
import { startServerProcess } from '../support/process.js';
import type { ConnectionEvent } from '@msr/protocol';
import { asClientKeys, connect, keyframeDone } from '../support/replay.js';
import { startMsr } from '../../scripts/services/msr.js';

const log = createLogger('silent');
const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sessions under load, slow clients and across servers', () => {
  let db: TestDatabase;
  let app: App;
  let events: HistoryEvent[];
  const start = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
  const end = start + 2 * HOUR;
  const clients: ReplayClient[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(17, start, 2 * HOUR - 1000, 3000);
    await insertHistory(db.pool, events);
    app = await startMsr(
      db.url,
      { DB_POOL_SIZE: '4', MAX_ACTIVE_SESSIONS: '55' },
      { log, replay: { leaseMs: 1_500, idleMs: 700, limits: { ...DEFAULT_LIMITS, tickMs: 25 } } },
    );
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await app?.stop();
    await db?.drop();
  });

  const client = async () => {
    const c = await connect(app.port, { reconnect: true });
    clients.push(c);
    return c;
  };
  const expected = (t: number) => asClientKeys(referenceState(events, t));

  it('opens 20 sessions at one time T with one keyframe read, each keyframe exact', async () => {
    const at = start + 47 * 60_000;
    const reads = async () => {
      const text = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
      const count = (shared: string) =>
        Number(new RegExp(`msr_keyframe_reads_total\\{shared="${shared}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { started: count('false'), joined: count('true') };
    };
    const before = await reads();
    const sessions = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const c = await client();
        const keyframe = keyframeDone(c);
        await c.open({ from: start, to: end, at });
        await keyframe;
        return c;
      }),
    );
    const after = await reads();
    for (const c of sessions) expect(c.state).toEqual(expected(at));
    expect(after.started + after.joined - before.started - before.joined).toBe(20);
    // Sockets connect one after another, so a few may come after the first read is over.
    expect(after.joined - before.joined).toBeGreaterThanOrEqual(10);
    await Promise.all(sessions.map((c) => c.close()));
  });

  it('plays 50 sessions at different speeds at once, each exact, on a fixed pool', async () => {
    const speeds: Speed[] = [1, 10, 60, 300, 1000, -60, -300, 'max', '-max', 0.5];
    const sessions = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = await client();
        const at = start + ((i * 37) % 60) * 60_000;
        const keyframe = keyframeDone(c);
        await c.open({ from: start, to: end, at, speed: speeds[i % speeds.length] });
        await keyframe;
        return c;
      }),
    );
    await Promise.all(sessions.map((c) => c.play()));
    const connections = await db.pool.query(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'msr'`,
    );
    await sleep(1_500);
    await Promise.all(sessions.map((c) => c.pause()));
    await sleep(200);
    for (const c of sessions) expect(c.state).toEqual(expected(c.t));
    // The server's pool never grows with sessions.
    expect(connections.rows[0].n).toBeLessThanOrEqual(4);
    const moved = sessions.filter((c, i) => c.t !== start + ((i * 37) % 60) * 60_000);
    expect(moved.length).toBeGreaterThan(40);
    await Promise.all(sessions.map((c) => c.close()));
  });

  it('lets a second socket attach, and resumes a session after a going-away close', async () => {
    const a = await client();
    await a.open({ from: start, to: end, at: start + HOUR });
    const session = a.session!;
    const b = await client();
    const keyframe = keyframeDone(b);
    await b.attach(session);
    await keyframe;
    expect(b.state).toEqual(expected(start + HOUR));

    // The server drops a's socket as it would when shutting down: a reconnects and attaches, and
    // says so as it goes.
    const events: ConnectionEvent[] = [];
    a.onConnection((event) => events.push(event));
    const resumed = keyframeDone(a, 10_000);
    const live = app.sessions.local(session)!;
    const [sink] = [...live.sinks];
    sink!.close(CloseCode.GOING_AWAY, 'test');
    await resumed;
    expect(a.session).toBe(session);
    expect(a.state).toEqual(expected(start + HOUR));
    expect(events).toEqual([
      { state: 'reconnecting', code: CloseCode.GOING_AWAY, attempt: 1 },
      { state: 'open' },
    ]);
    // The session closed by its other socket: b's close is one the client does not resume from,
    // and it says so once.
    const closed = new Promise<ConnectionEvent>((resolve) => b.onConnection(resolve));
    await a.close();
    expect(await closed).toEqual({ state: 'closed', code: CloseCode.NORMAL, reason: 'session closed' });
  });

  it('expires a session nobody is attached to and frees its slot', async () => {
    const created = await fetch(`http://127.0.0.1:${app.port}/api/v1/sessions`, {
      method: 'POST',
      body: JSON.stringify({ from: start, to: end }),
    });
    const { session } = (await created.json()) as { session: string };
    expect(app.sessions.local(session)).toBeDefined();
    const deadline = Date.now() + 5_000;
    while (app.sessions.local(session) && Date.now() < deadline) await sleep(100);
    expect(app.sessions.local(session)).toBeUndefined();
    const c = await client();
    await expect(c.attach(session)).rejects.toThrow(/SESSION_NOT_FOUND/);
  });

  /** A second server with tight backpressure limits, for clients that stop reading. */
  const tightServer = (limits: Partial<PlayerLimits>, leaseMs?: number) =>
    startMsr(
      db.url,
      { DB_POOL_SIZE: '2' },
      {
        log,
        replay: {
          ...(leaseMs === undefined ? {} : { leaseMs }),
          limits: { ...DEFAULT_LIMITS, highWaterBytes: 8_000, lowWaterBytes: 2_000, tickMs: 10, ...limits },
        },
      },
    );

  /** Rows of 10 kB, one a second from `start`, over 150 entities of city.<table>: frames outgrow the kernel's socket buffers. */
  const insertSlabs = (table: string, count: number) =>
    db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       select to_timestamp($1 / 1000.0) + i * interval '1 second', 'test', 'city', $2, (i % 150)::text, 'u',
              jsonb_build_object('i', i, 'pad', repeat('x', 10000))
         from generate_series(1, $3::int) i`,
      [start, table, count],
    );

  /** A bare socket with its received messages, its close code, and its TCP socket to pause reading. */
  const rawSocket = async (port: number) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/replay`, ['msr.v1.json']);
    await new Promise((resolve) => socket.once('open', resolve));
    const received: { type: string; coalesced?: boolean }[] = [];
    socket.on('message', (data) => received.push(JSON.parse(String(data))));
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const raw = (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    return { socket, received, closed, raw };
  };

  it('coalesces for a client that stops reading, stays bounded, then closes it with 4008', async () => {
    const slow = await tightServer({ maxPendingEntities: 200, stuckMs: 2_500 });
    // 100 minutes of large rows (6 s at 1000x), so the socket stays over the limit long enough
    // after the kernel's buffers have filled.
    await insertSlabs('blob', 6000);
    try {
      const { socket, received, closed, raw } = await rawSocket(slow.port);
      socket.send(
        JSON.stringify({
          type: 'open',
          rid: 1,
          from: start,
          to: end,
          at: start,
          speed: 1000,
          tables: ['city.blob'],
        }),
      );
      await sleep(300);
      // Stop reading as soon as play starts: about 10 MB/s of frames pile up in the server.
      socket.send(JSON.stringify({ type: 'play', rid: 2 }));
      raw.pause();
      await sleep(2_000);
      const session = slow.sessions.list()[0]!;
      const { player } = session as unknown as { player: { pending: Map<string, unknown> } };
      const pending = player.pending;
      // Coalescing holds at most one change per entity (150 blobs), not every event.
      expect(pending.size).toBeGreaterThan(0);
      expect(pending.size).toBeLessThanOrEqual(150);
      raw.resume();
      await sleep(1_500);
      expect(received.some((m) => m.type === 'frame' && m.coalesced === true)).toBe(true);
      expect(received.filter((m) => m.type === 'ok')).toHaveLength(1);

      // From the start again, and never read: past stuckMs the server ends the socket with 4008,
      // which the client sees once it reads what was queued before it.
      socket.send(JSON.stringify({ type: 'seek', rid: 3, t: start }));
      await sleep(100);
      raw.pause();
      const deadline = Date.now() + 15_000;
      const ended = () => [...session.sinks].every((sink) => !(sink as unknown as { open: boolean }).open);
      while (!ended() && Date.now() < deadline) await sleep(50);
      expect(ended()).toBe(true);
      raw.resume();
      const code = await Promise.race([closed, sleep(10_000).then(() => -1)]);
      expect(code).toBe(CloseCode.TOO_SLOW);
    } finally {
      await slow.stop();
    }
  });

  it('closes a stuck socket with 4008 even when its session stopped at the end of its range', async () => {
    // Housekeeping every 500 ms (a third of the lease).
    const slow = await tightServer({ stuckMs: 5_000 }, 1_500);
    // 30 minutes of large rows: at 1000x the session reaches its end in about 2 s, well before the
    // 5 s stuck limit, with megabytes still queued for a client that does not read.
    await insertSlabs('slab', 1800);
    try {
      const { socket, received, closed, raw } = await rawSocket(slow.port);
      const to = start + 1_801_000;
      socket.send(
        JSON.stringify({
          type: 'open',
          rid: 1,
          from: start,
          to,
          at: start,
          speed: 1000,
          tables: ['city.slab'],
        }),
      );
      await sleep(300);
      socket.send(JSON.stringify({ type: 'play', rid: 2 }));
      raw.pause();
      const session = slow.sessions.list()[0]!;
      const deadline = Date.now() + 10_000;
      while (session.state.playing || session.state.position < to * 1000) {
        if (Date.now() > deadline) throw new Error('the session did not reach its end');
        await sleep(50);
      }
      const endedAt = Date.now();
      const open = () => [...session.sinks].some((sink) => (sink as unknown as { open: boolean }).open);
      expect(open()).toBe(true); // stopped, still stuck, not closed yet
      while (open() && Date.now() < endedAt + 10_000) await sleep(50);
      expect(open()).toBe(false);
      raw.resume();
      const code = await Promise.race([closed, sleep(10_000).then(() => -1)]);
      expect(code).toBe(CloseCode.TOO_SLOW);
      expect(received.some((m) => m.type === 'end')).toBe(true); // it got to read what was queued
    } finally {
      await slow.stop();
    }
  });

  it('hands its sessions over when it shuts down: 1001, then attach on another server resumes', async () => {
    const config = loadConfig({ DATABASE_URL: db.url, AUTH_MODE: 'none', PORT: '0', DB_POOL_SIZE: '2' });
    const first = await createApp(config, { log });
    const second = await createApp(config, { log });
    try {
      const c = await connect(first.port);
      const at = start + 30 * 60_000;
      // (The filter leaves out the blobs an earlier test wrote, and must survive the hand-over.)
      await c.open({ from: start, to: end, at, tables: ['city.vehicle', 'city.incident'] });
      await keyframeDone(c);
      const session = c.session!;
      const said: string[] = [];
      c.on((m) => m.type === 'error' && said.push(m.code));
      await first.stop();
      await until('the going-away close', async () => c.lastClose);
      expect(c.lastClose!.code).toBe(CloseCode.GOING_AWAY);
      expect(said).toEqual(['SHUTTING_DOWN']);
      // The close carries where the session stood.
      expect(decodeResumeToken(c.resumeToken!)).toEqual({ t: at, speed: 1, playing: false });
      // The slot is free at once, and the session resumes elsewhere where it was.
      const { rows } = await db.pool.query(
        `select count(*)::int as n from msr.session where id = $1 and closed_at is null and lease_until > now()`,
        [session],
      );
      expect(rows[0].n).toBe(0);
      // As if the old server's last write of the position had not reached the database: the
      // token still brings the session back where it was.
      await db.pool.query(`update msr.session set position = $2 where id = $1`, [session, new Date(start)]);
      const elsewhere = await connect(second.port);
      const keyframe = keyframeDone(elsewhere);
      await elsewhere.attach(session, c.resumeToken);
      expect((await keyframe).t).toBe(at);
      expect(elsewhere.state).toEqual(expected(at));
      await elsewhere.close();
      elsewhere.disconnect();
    } finally {
      await second.stop();
    }
  });

  it('counts the session cap across two server processes on one database', async () => {
    await db.pool.query(`update msr.session set closed_at = now() where closed_at is null`);
    const other = startServerProcess({
      DATABASE_URL: db.url,
      AUTH_MODE: 'none',
      PORT: '0',
      MAX_ACTIVE_SESSIONS: '2',
      LOG_LEVEL: 'info',
    });
    const inProcess = await startMsr(db.url, { DB_POOL_SIZE: '2', MAX_ACTIVE_SESSIONS: '2' }, { log });
    try {
      const otherPort = await other.port();
      const c1 = await connect(otherPort);
      await c1.open({ from: start, to: end });
      const c2 = await connect(inProcess.port);
      await c2.open({ from: start, to: end });
      const c3 = await connect(otherPort);
      await expect(c3.open({ from: start, to: end })).rejects.toThrow(/SESSION_LIMIT/);
      const c4 = await connect(inProcess.port);
      await expect(c4.open({ from: start, to: end })).rejects.toThrow(/SESSION_LIMIT/);
      await c1.close();
      await c4.open({ from: start, to: end });
      for (const c of [c2, c3, c4]) c.disconnect();
    } finally {
      other.child.kill('SIGTERM');
      expect(await other.exited).toBe(0);
      await inProcess.stop();
    }
  });
});
