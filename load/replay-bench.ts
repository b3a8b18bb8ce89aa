// Replay figures on a seeded database, through the real server and real WebSockets on 127.0.0.1:
// seek latency, one session at max speed, many 1x sessions with their frame lateness, memory per
// socket and per session, and the database connections in use.
import pg from 'pg';
import type { App } from '../server/app.js';
import { createLogger } from '../server/logger.js';
import { ClientProcess } from './client-process.js';
import { cpuWindow } from './cpu-usage.js';
import { percentile } from './percentile.js';
import { profiled, type HotFunction } from './profile.js';
import { startMsr } from '../scripts/services/msr.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the previous step's sessions are gone, so the next one starts from none. */
async function allClosed(app: App): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (app.sessions.list().length > 0) {
    if (Date.now() > deadline)
      throw new Error(`${app.sessions.list().length} sessions still open after 60 s`);
    await sleep(100);
  }
}

/** The server's memory after a full collection (the bench runs with --expose-gc), in KiB. */
function settledMemoryKb(): { rss: number; heap: number } {
  global.gc?.();
  global.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss / 1024, heap: (m.heapUsed + m.external) / 1024 };
}

/**
 * Clients whose sockets stop reading (the TCP receive side paused) while their sessions play at
 * 100x: the server should coalesce, keep its memory bounded, and close them with 4008 in the end.
 */
async function slowClients(url: string, earliest: number, latest: number, app: App) {
  const { metrics } = app;
  const count = 20;
  const seconds = 50; // the kernel's buffers fill first, then the 30 s stuck limit runs
  const coalescedBefore = (await metrics.framesCoalesced.get()).values[0]?.value ?? 0;
  const before = settledMemoryKb();
  const clients = await ClientProcess.start({ url, mode: 'slow', count, earliest, latest });
  // The peak comes before the stuck sockets are closed.
  await sleep(30_000);
  const peak = settledMemoryKb();
  await sleep((seconds - 30) * 1000);
  const coalescedFrames = ((await metrics.framesCoalesced.get()).values[0]?.value ?? 0) - coalescedBefore;
  // A socket stuck past the limit is closed with 4008 (its session stays, for a reattach).
  const closedTooSlow = app.sessions.list().filter((s) => s.sinks.size === 0).length;
  const after = settledMemoryKb();
  await clients.finish();
  await sleep(500);
  return {
    clients: count,
    seconds,
    coalescedFrames,
    rssGrowthKbPerClient: Math.round((peak.rss - before.rss) / count),
    heapGrowthKbPerClient: Math.round((peak.heap - before.heap) / count),
    rssAfterCloseKbPerClient: Math.round((after.rss - before.rss) / count),
    closedTooSlow,
  };
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
    /** CPU over the 10 s window, percent of one core (the machine has cpus().length cores). */
    serverCpuPct?: number;
    databaseCpuPct?: number;
    clientsCpuPct?: number;
  }[];
  /** 500 sessions again with the server's CPU profiled: the functions with the most self time. */
  profile500?: { latenessP50: number; latenessP99: number; hot: HotFunction[] };
  /** Server memory (RSS; JS heap + external) after a full collection, with the clients elsewhere. */
  memory: { idleSocketKb: number; playingSessionKb: number; playingSessionHeapKb?: number };
  /** Clients that stop reading while their sessions play at 100x. */
  slowClients?: {
    clients: number;
    seconds: number;
    coalescedFrames: number;
    rssGrowthKbPerClient: number;
    heapGrowthKbPerClient?: number;
    rssAfterCloseKbPerClient?: number;
    closedTooSlow: number;
  };
}

export async function replayBench(
  databaseUrl: string,
  earliest: number,
  latest: number,
): Promise<ReplayFigures> {
  const log = createLogger('warn');
  const app = await startMsr(databaseUrl, { MAX_ACTIVE_SESSIONS: '600', DB_POOL_SIZE: '10' }, { log });
  const url = `ws://127.0.0.1:${app.port}/v1/replay`;
  // Every client runs in a process of its own (load/session-clients.ts): this process is the server.
  const admin = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  /** The server's PostgreSQL backends (its pool's connections). */
  const serverBackends = async () =>
    (
      await admin.query<{ pid: number }>(
        `select pid from pg_stat_activity where datname = current_database() and application_name = 'msr'`,
      )
    ).rows.map((r) => r.pid);
  try {
    // Seek latency (first keyframe byte, complete keyframe) and one session at max speed, from
    // a client in its own process like every other measurement.
    const single = await ClientProcess.start({ url, mode: 'seek-max', count: 1, earliest, latest });
    const { seeks, maxSpeed } = await single.finish();
    const { firstByte, complete, entities } = seeks!;
    const { events, seconds } = maxSpeed!;
    await allClosed(app);

    // Memory per idle socket and per playing session, measured on the server alone.
    const quiet = settledMemoryKb();
    // 1,000 sockets, so that RSS noise (tens of MiB up or down after a GC) stays small per socket.
    const idle = await ClientProcess.start({ url, mode: 'idle', count: 1000, earliest, latest });
    await sleep(500);
    const idleSocketKb = (settledMemoryKb().rss - quiet.rss) / 1000;
    await idle.finish();
    await sleep(500);

    // Concurrent 1x sessions: frame lateness against each session's clock.
    const concurrent: ReplayFigures['concurrent'] = [];
    let playing = { rssKb: 0, heapKb: 0 };
    for (const count of [1, 10, 50, 100, 200, 500]) {
      const before = settledMemoryKb();
      const clients = await ClientProcess.start({ url, mode: 'play', count, earliest, latest });
      const backends = await serverBackends();
      const cpu = await cpuWindow(backends);
      await sleep(10_000);
      const shares = await cpu();
      if (count === 200) {
        const during = settledMemoryKb();
        playing = {
          rssKb: Math.round((during.rss - before.rss) / count),
          heapKb: Math.round((during.heap - before.heap) / count),
        };
      }
      const done = await clients.finish();
      process.stderr.write(
        `bench: ${count} sessions at 1x, lateness p50/p99 ${done.latenessP50}/${done.latenessP99} ms\n`,
      );
      concurrent.push({
        sessions: count,
        openSeconds: Math.round(clients.ready.openMs / 100) / 10,
        frames: done.frames,
        latenessP50: done.latenessP50,
        latenessP99: done.latenessP99,
        dbConnections: backends.length,
        serverCpuPct: shares.serverPct,
        databaseCpuPct: shares.databasePct,
        clientsCpuPct: done.cpuPct,
      });
      await allClosed(app);
    }

    // Where the time goes in the heaviest step: 500 sessions again, with the server profiled.
    const heavy = await ClientProcess.start({ url, mode: 'play', count: 500, earliest, latest });
    const { hot } = await profiled(() => sleep(10_000));
    const heavyDone = await heavy.finish();
    const profile500 = { latenessP50: heavyDone.latenessP50, latenessP99: heavyDone.latenessP99, hot };

    return {
      profile500,
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
      memory: {
        idleSocketKb: Math.round(idleSocketKb),
        playingSessionKb: playing.rssKb,
        playingSessionHeapKb: playing.heapKb,
      },
      slowClients: await slowClients(url, earliest, latest, app),
    };
  } finally {
    await admin.end();
    await app.stop();
  }
}
