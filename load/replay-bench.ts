// Replay figures on a seeded database, through the real server and real WebSockets on 127.0.0.1:
// seek latency, one session at max speed, many 1x sessions with their frame lateness, memory per
// socket and per session, and the database connections in use.
import pg from 'pg';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '../protocol/client.js';
import type { ServerMessage } from '../protocol/messages.js';
import { createApp, type App } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';

const factory = (url: string, protocols: string[]) =>
  new WebSocket(url, protocols) as unknown as WebSocketLike;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Clients whose sockets stop reading (the TCP receive side paused) while their sessions play at
 * 100x: the server should coalesce, keep its memory bounded, and close them with 4008 in the end.
 */
async function slowClients(url: string, earliest: number, latest: number, app: App) {
  const { metrics } = app;
  const count = 20;
  const seconds = 40; // past the 30 s stuck limit
  const coalescedBefore = (await metrics.framesCoalesced.get()).values[0]?.value ?? 0;
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const sockets = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const ws = new WebSocket(url, ['msr.v1.json']);
      return new Promise<WebSocket>((resolve) =>
        ws.on('open', () => {
          const at = earliest + ((i + 1) / (count + 2)) * (latest - earliest - 3_600_000);
          ws.send(JSON.stringify({ type: 'open', from: earliest, to: latest, at, speed: 100 }));
          ws.send(JSON.stringify({ type: 'play' }));
          // Stop reading: the kernel buffers fill, then the server's send buffer grows.
          setTimeout(() => (ws as unknown as { _socket: { pause(): void } })._socket.pause(), 200);
          resolve(ws);
        }),
      );
    }),
  );
  await sleep(seconds * 1000);
  const rssGrowthKbPerClient = Math.round((process.memoryUsage().rss - rssBefore) / 1024 / count);
  const coalescedFrames = ((await metrics.framesCoalesced.get()).values[0]?.value ?? 0) - coalescedBefore;
  // A socket stuck past the limit is closed with 4008 (its session stays, for a reattach).
  const closedTooSlow = app.sessions.list().filter((s) => s.sinks.size === 0).length;
  for (const ws of sockets) ws.terminate();
  await sleep(500);
  return { clients: count, seconds, coalescedFrames, rssGrowthKbPerClient, closedTooSlow };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export interface ReplayFigures {
  seek: {
    runs: number;
    firstByteP50: number;
    firstByteP95: number;
    completeP50: number;
    completeP95: number;
    entities: number;
    /** Every seek's time to its complete keyframe (ms), for the distribution chart. */
    completeSamples?: number[];
  };
  maxSpeed: { events: number; seconds: number; eventsPerSecond: number };
  concurrent: {
    sessions: number;
    openSeconds: number;
    frames: number;
    latenessP50: number;
    latenessP99: number;
    dbConnections: number;
  }[];
  memory: { idleSocketKb: number; playingSessionKb: number };
  /** Clients that stop reading while their sessions play at 100x. */
  slowClients?: {
    clients: number;
    seconds: number;
    coalescedFrames: number;
    rssGrowthKbPerClient: number;
    closedTooSlow: number;
  };
}

export async function replayBench(
  databaseUrl: string,
  earliest: number,
  latest: number,
): Promise<ReplayFigures> {
  const log = createLogger('warn');
  const app = await createApp(
    loadConfig({
      DATABASE_URL: databaseUrl,
      AUTH_MODE: 'none',
      PORT: '0',
      DEMO: 'false',
      MAX_ACTIVE_SESSIONS: '600',
      DB_POOL_SIZE: '10',
    }),
    { log },
  );
  const url = `ws://127.0.0.1:${app.port}/v1/replay`;
  // The clients run in this process too: they skip schema checks so that they cost the server little.
  const connect = () =>
    ReplayClient.connect(url, { webSocket: factory, requestTimeoutMs: 120_000, validate: false });
  const admin = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    // Seek latency: first keyframe byte and complete keyframe.
    const client = await connect();
    await client.open({ from: earliest, to: latest, at: earliest });
    await client.waitFor((m) => m.type === 'keyframe' && m.last, 60_000);
    const firstByte: number[] = [];
    const complete: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = Math.round(earliest + (((i * 7919) % 1000) / 1000) * (latest - earliest - 60_000));
      const started = performance.now();
      const first = client.waitFor((m) => m.type === 'keyframe' && m.t === t, 60_000);
      const last = client.waitFor((m) => m.type === 'keyframe' && m.t === t && m.last, 60_000);
      await client.seek(t);
      await first;
      firstByte.push(performance.now() - started);
      await last;
      complete.push(performance.now() - started);
    }
    const entities = client.state.size;

    // One session at max speed.
    let events = 0;
    const off = client.on((m) => {
      if (m.type === 'frame') events += m.changes.length;
    });
    const rewound = client.waitFor((m) => m.type === 'keyframe' && m.t === earliest && m.last, 60_000);
    await client.seek(earliest);
    await rewound;
    await client.speed('max');
    const maxStarted = performance.now();
    await client.play();
    await sleep(10_000);
    await client.pause();
    const seconds = (performance.now() - maxStarted) / 1000;
    off();
    await client.close();
    client.disconnect();

    // Memory per idle socket.
    global.gc?.();
    const before = process.memoryUsage().rss;
    const idle = await Promise.all(Array.from({ length: 200 }, () => connect()));
    await sleep(500);
    const idleSocketKb = (process.memoryUsage().rss - before) / 1024 / 200;
    for (const c of idle) c.disconnect();
    await sleep(500);

    // Concurrent 1x sessions: frame lateness against each session's clock.
    const concurrent: ReplayFigures['concurrent'] = [];
    let playingSessionKb = 0;
    for (const count of [1, 10, 50, 100, 200, 500]) {
      const rssBefore = process.memoryUsage().rss;
      const clients = await Promise.all(Array.from({ length: count }, () => connect()));
      const lateness: number[] = [];
      let frames = 0;
      // Sessions arrive in waves of 25 (every keyframe is a full state query); the time to get them
      // all opened is reported separately from the steady-state lateness.
      const openStarted = performance.now();
      for (let first = 0; first < clients.length; first += 25) {
        await Promise.all(
          clients.slice(first, first + 25).map(async (c, k) => {
            const i = first + k;
            const at = Math.round(earliest + (((i * 104729) % 997) / 997) * (latest - earliest - 3_600_000));
            await c.open({ from: earliest, to: latest, at, speed: 1 });
            await c.waitFor((m) => m.type === 'keyframe' && m.last, 300_000);
          }),
        );
      }
      const openMs = performance.now() - openStarted;
      await Promise.all(
        clients.map(async (c) => {
          let origin: { wall: number; t: number } | undefined;
          c.on((m: ServerMessage) => {
            if (m.type === 'clock' && m.playing && !origin) origin = { wall: Date.now(), t: m.t };
            if (m.type === 'frame' && origin) {
              frames += 1;
              lateness.push(Date.now() - (origin.wall + (m.t - origin.t)));
            }
          });
          await c.play();
        }),
      );
      await sleep(10_000);
      const { rows } = await admin.query(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'msr'`,
      );
      if (count === 200) playingSessionKb = (process.memoryUsage().rss - rssBefore) / 1024 / count;
      concurrent.push({
        sessions: count,
        openSeconds: Math.round(openMs / 100) / 10,
        frames,
        latenessP50: Math.round(percentile(lateness, 50)),
        latenessP99: Math.round(percentile(lateness, 99)),
        dbConnections: rows[0].n,
      });
      await Promise.all(clients.map((c) => c.close()));
      for (const c of clients) c.disconnect();
      await sleep(500);
    }

    return {
      seek: {
        runs: complete.length,
        firstByteP50: Math.round(percentile(firstByte, 50)),
        firstByteP95: Math.round(percentile(firstByte, 95)),
        completeSamples: complete.map((ms) => Math.round(ms)),
        completeP50: Math.round(percentile(complete, 50)),
        completeP95: Math.round(percentile(complete, 95)),
        entities,
      },
      maxSpeed: {
        events,
        seconds: Math.round(seconds * 10) / 10,
        eventsPerSecond: Math.round(events / seconds),
      },
      concurrent,
      memory: { idleSocketKb: Math.round(idleSocketKb), playingSessionKb: Math.round(playingSessionKb) },
      slowClients: await slowClients(url, earliest, latest, app),
    };
  } finally {
    await admin.end();
    await app.stop();
  }
}
