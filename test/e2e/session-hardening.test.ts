import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplayClient, ReplayRequestError } from '@msr/protocol';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, hoursAgo, insertHistory } from '../support/history.js';
import { connect, keyframeDone } from '../support/replay.js';
import { until } from '../support/wait.js';
import { startMsr } from '../../scripts/services/msr.js';

// Defects found by attacking the server: a session opened by a socket that closed during `open`
// held its slot for good, and `attach` on a second server took over a session its live server
// was still playing (both played it, and the cap no longer held).
const log = createLogger('silent');
const HOUR = 3_600_000;

describe('sessions cannot leak or be taken from a live server', () => {
  let db: TestDatabase;
  let a: App;
  let c: App;
  const start = hoursAgo(3);
  const end = start + 2 * HOUR;
  const clients: ReplayClient[] = [];
  const env = (cap: string) => ({
    DATABASE_URL: db.url,
    AUTH_MODE: 'none',
    PORT: '0',
    DB_POOL_SIZE: '4',
    MAX_ACTIVE_SESSIONS: cap,
  });
  const active = async () =>
    (
      await db.pool.query<{ n: number }>(
        `select count(*)::int as n from msr.session where closed_at is null and lease_until > now()`,
      )
    ).rows[0]!.n;

  beforeAll(async () => {
    db = await createTestDatabase();
    await insertHistory(db.pool, generateHistory(3, start, 2 * HOUR - 1000, 800));
    // Sessions nobody is attached to expire after half a second (housekeeping every 500 ms).
    a = await createApp(loadConfig(env('100')), { log, replay: { idleMs: 500, leaseMs: 1_500 } });
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await c?.stop();
    await a?.stop();
    await db?.drop();
  });

  it('leaves no session behind when the socket closes during open (100 tries)', async () => {
    const open = JSON.stringify({ type: 'open', rid: 1, from: start, to: end, at: start + HOUR });
    await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${a.port}/v1/replay`, ['msr.v1.json']);
            ws.on('error', reject);
            ws.on('close', () => resolve());
            ws.on('open', () => {
              ws.send(open);
              // Some close at once, some a moment later: while open is at the database.
              setTimeout(() => ws.terminate(), i % 4);
            });
          }),
      ),
    );
    // Every session opened was closed with its socket, or expired unattached: none here, none counted.
    await new Promise((r) => setTimeout(r, 2_000));
    await until(
      'no sessions left',
      async () => a.sessions.list().length === 0 && (await active()) === 0,
      10_000,
    );
    expect(a.sessions.list()).toEqual([]);
    expect(await active()).toBe(0);
  });

  it('refuses attach on another server while the session plays, and keeps the cap', async () => {
    c = await createApp(loadConfig(env('2')), { log });
    const owner = await connect(a.port);
    clients.push(owner);
    const keyframe = keyframeDone(owner);
    await owner.open({ from: start, to: end, at: start + HOUR });
    await keyframe;
    const session = owner.session!;

    const thief = await connect(c.port);
    clients.push(thief);
    const refused = (await thief.attach(session).catch((err: unknown) => err)) as ReplayRequestError;
    expect(refused.code).toBe('SESSION_ELSEWHERE');
    expect(refused.message).toContain(a.sessions.serverId);
    // Not taken: it stays on its server, which still plays it, and DELETE elsewhere frees no slot.
    const { rows } = await db.pool.query(`select server_id from msr.session where id = $1`, [session]);
    expect(rows[0].server_id).toBe(a.sessions.serverId);
    expect(c.sessions.local(session)).toBeUndefined();
    const deleted = await fetch(`http://127.0.0.1:${c.port}/api/v1/sessions/${session}`, {
      method: 'DELETE',
    });
    expect(deleted.status).toBe(404);
    expect(await active()).toBe(1);
    // With a cap of 2 across both servers, one more session fits and the next does not.
    const second = await connect(c.port);
    clients.push(second);
    await second.open({ from: start, to: end, at: start });
    const third = await connect(c.port);
    clients.push(third);
    const full = (await third
      .open({ from: start, to: end, at: start })
      .catch((err: unknown) => err)) as ReplayRequestError;
    expect(full.code).toBe('SESSION_LIMIT');
    await owner.play();
    await owner.pause();
  });
});

describe('per-socket and per-session bounds', () => {
  let db: TestDatabase;
  let app: App;
  const start = hoursAgo(3);
  const end = start + 2 * HOUR;
  const clients: ReplayClient[] = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    await insertHistory(db.pool, generateHistory(4, start, 2 * HOUR - 1000, 300));
    app = await startMsr(
      db.url,
      {
        DB_POOL_SIZE: '2',
        MAX_SOCKETS: '6',
        MAX_SOCKETS_PER_SESSION: '2',
        UNBOUND_SOCKET_BUFFER_BYTES: '4096',
      },
      { log },
    );
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await app?.stop();
    await db?.drop();
  });
  const client = async () => {
    const c = await connect(app.port);
    clients.push(c);
    return c;
  };

  it('lets MAX_SOCKETS_PER_SESSION sockets attach to one session, and refuses the next with SOCKET_LIMIT', async () => {
    const owner = await client();
    await owner.open({ from: start, to: end, at: start });
    const second = await client();
    await second.attach(owner.session!);
    const third = await client();
    const refused = (await third.attach(owner.session!).catch((err: unknown) => err)) as ReplayRequestError;
    expect(refused.code).toBe('SOCKET_LIMIT');
    await owner.close();
    for (const c of clients.splice(0)) c.disconnect();
    await until('sockets closed', async () => app.sessions.list().length === 0);
  });

  it('closes the socket past MAX_SOCKETS with 1013 SOCKET_LIMIT, and serves again when sockets go', async () => {
    const open = await Promise.all(Array.from({ length: 6 }, () => client()));
    const extra = await client();
    await until('the extra socket closed', async () => extra.lastClose, 10_000);
    expect(extra.lastClose).toEqual({ code: 1013, reason: 'SOCKET_LIMIT' });
    for (const c of open) c.disconnect();
    await new Promise((r) => setTimeout(r, 500));
    const again = await client();
    await again.open({ from: start, to: end, at: start });
    expect(again.session).toEqual(expect.any(String));
    await again.close();
    for (const c of clients.splice(0)) c.disconnect();
  });

  it('closes a socket without a session that sends bad messages and reads no replies (4008)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/v1/replay`, ['msr.v1.json']);
    await new Promise((resolve, reject) => {
      ws.on('open', resolve);
      ws.on('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    let replies = 0;
    ws.on('message', () => replies++);
    // Stop reading: the replies pile up on the server's side of the socket.
    (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    // 60,000 replies of ~150 bytes: more than the kernel's socket buffers take, so the rest waits
    // in the server, where the bound applies.
    const messages = 60_000;
    for (let i = 0; i < messages; i++) ws.send(JSON.stringify({ type: `bogus-${'x'.repeat(200)}`, rid: i }));
    await new Promise((r) => setTimeout(r, 3_000));
    (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
    expect([4008, 1006]).toContain(code);
    // It stopped answering once its bound was reached: far fewer replies than messages.
    expect(replies).toBeLessThan(messages * 0.9);
  });
});
