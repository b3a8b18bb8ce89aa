// Benchmark: live-follow sessions at scale. A writer stores 200 changes a second (1,000 entities,
// event time = the commit's clock) straight into msr.cdc_event of a fresh database; N sessions
// (default 100 and 500) open a second behind the clock and play at 1x, so they follow the live
// edge. Over 15 s: the server's live-tail reads (the one reader that feeds every session near the
// edge), window reads and late-row checks the sessions made on their own, each change's arrival at
// a client minus its event time (LIVE_DELAY_MS included), and the CPU of MSR and its database
// backends. The clients run in a process of their own, as in `npm run bench`.
// Usage: npm run bench:live [-- --dialect=timescaledb] [-- --sessions=100,500]
//        (writes load/results/live.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { App } from '../server/app.js';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createLogger } from '../server/logger.js';
import { startMsr } from '../scripts/services/msr.js';
import { startBenchDatabase } from './bench-database.js';
import { ClientProcess } from './client-process.js';
import { cpuWindow } from './cpu-usage.js';

const log = createLogger('warn');
const RESULTS = new URL('./results/', import.meta.url);
const WINDOW_MS = 15_000;
const ENTITIES = 1_000;
const ROWS_PER_SECOND = 200;
const WRITE_EVERY_MS = 50;

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const dialect: Dialect = arg('dialect') === 'timescaledb' ? 'timescaledb' : 'postgres';
const counts = (arg('sessions') ?? '100,500').split(',').map(Number);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  sessions: number;
  openSeconds: number;
  /** Per second over the window. */
  tailReadsPerSecond: number;
  ownWindowReadsPerSecond: number;
  ownLateChecksPerSecond: number;
  frames: number;
  latenessP50Ms: number;
  latenessP99Ms: number;
  /** Percent of one core over the window. */
  msrCpuPct: number;
  databaseCpuPct: number;
}

/** Inserts a batch of changes every WRITE_EVERY_MS, stamped with the inserting transaction's clock. */
function startWriter(pool: pg.Pool): { stop(): Promise<void> } {
  let offset = ENTITIES;
  let stopped = false;
  const perBatch = (ROWS_PER_SECOND * WRITE_EVERY_MS) / 1000;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      await pool.query(
        `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after,
                                    lsn, kafka_topic, kafka_partition, kafka_offset)
         select clock_timestamp(), 'bench', 'live', 'vehicle', (o % $3)::text, 'u',
                jsonb_build_object('id', o % $3, 'n', o), o, 'bench.live.vehicle', 0, o
           from generate_series($1::bigint, $1::bigint + $2 - 1) o`,
        [offset, perBatch, ENTITIES],
      );
      offset += perBatch;
      await sleep(Math.max(0, started + WRITE_EVERY_MS - Date.now()));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

const counter = async (metric: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await metric.get()).values.reduce((n, v) => n + v.value, 0);

async function run(url: string, pool: pg.Pool, sessions: number): Promise<Run> {
  const app: App = await startMsr(
    url,
    { MAX_ACTIVE_SESSIONS: String(sessions + 10), DB_POOL_SIZE: '10', AGGREGATE_REFRESH_SECONDS: '0' },
    { log },
  );
  try {
    const clients = await ClientProcess.start({
      url: `ws://127.0.0.1:${app.port}/v1/replay`,
      mode: 'live',
      count: sessions,
      earliest: 0,
      latest: 0,
    });
    const { rows } = await pool.query<{ pid: number }>(
      `select pid from pg_stat_activity where datname = current_database() and application_name = 'msr'`,
    );
    const cpu = await cpuWindow(rows.map((r) => r.pid));
    const before = {
      tail: await counter(app.metrics.liveTailReads),
      windows: await counter(app.metrics.replayReads),
      late: await counter(app.metrics.liveEdgeChecks),
    };
    await sleep(WINDOW_MS);
    const shares = await cpu();
    const perSecond = async (metric: Parameters<typeof counter>[0], from: number) =>
      Math.round((((await counter(metric)) - from) / WINDOW_MS) * 1000 * 10) / 10;
    const figures = {
      tail: await perSecond(app.metrics.liveTailReads, before.tail),
      windows: await perSecond(app.metrics.replayReads, before.windows),
      late: await perSecond(app.metrics.liveEdgeChecks, before.late),
    };
    const done = await clients.finish();
    return {
      sessions,
      openSeconds: Math.round(clients.ready.openMs / 100) / 10,
      tailReadsPerSecond: figures.tail,
      ownWindowReadsPerSecond: figures.windows,
      ownLateChecksPerSecond: figures.late,
      frames: done.frames,
      latenessP50Ms: done.latenessP50,
      latenessP99Ms: done.latenessP99,
      // This process also runs the writer: a few percent of a core.
      msrCpuPct: shares.serverPct,
      databaseCpuPct: shares.databasePct,
    };
  } finally {
    await app.stop();
  }
}

const dir = await mkdtemp(path.join(tmpdir(), 'msr-live-bench-'));
const database = await startBenchDatabase(dialect, dir);
// Not named 'msr', so its backends are not counted as MSR's database CPU.
const pool = new pg.Pool({ connectionString: database.url, max: 2, application_name: 'msr-live-bench' });
const runs: Run[] = [];
try {
  await migrate(pool, log);
  await pool.query(`select msr.prepare_storage(current_date - 1, current_date + 2)`);
  // Every entity exists two minutes back, so sessions opened a minute back start from a full state.
  await pool.query(
    `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after,
                                lsn, kafka_topic, kafka_partition, kafka_offset)
     select now() - interval '2 minutes', 'bench', 'live', 'vehicle', o::text, 'r',
            jsonb_build_object('id', o, 'n', 0), o, 'bench.live.vehicle', 0, o
       from generate_series(0, $1 - 1) o`,
    [ENTITIES],
  );
  const writer = startWriter(pool);
  try {
    await sleep(2_000);
    for (const sessions of counts) {
      const figures = await run(database.url, pool, sessions);
      process.stderr.write(`bench: ${JSON.stringify(figures)}\n`);
      runs.push(figures);
    }
  } finally {
    await writer.stop();
  }
} finally {
  await pool.end();
  await database.stop();
  await rm(dir, { recursive: true, force: true });
}

const machine = `${cpus().length} cores, node ${process.version}`;
const md = [
  `# Live-follow sessions (${dialect})`,
  '',
  `Machine: ${machine}. ${ROWS_PER_SECOND} changes a second over ${ENTITIES} entities; LIVE_DELAY_MS at its default (1000); a ${WINDOW_MS / 1000} s window.`,
  '',
  '| sessions | opened in | live-tail reads/s | own window reads/s | own late-row checks/s | frames | lateness p50 / p99 | MSR CPU | database CPU |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...runs.map(
    (r) =>
      `| ${r.sessions} | ${r.openSeconds} s | ${r.tailReadsPerSecond} | ${r.ownWindowReadsPerSecond} | ${r.ownLateChecksPerSecond} | ${r.frames} | ${r.latenessP50Ms} / ${r.latenessP99Ms} ms | ${r.msrCpuPct} % | ${r.databaseCpuPct} % |`,
  ),
  '',
].join('\n');
await mkdir(RESULTS, { recursive: true });
await writeFile(new URL('live.json', RESULTS), `${JSON.stringify({ machine, dialect, runs }, null, 2)}\n`);
await writeFile(new URL('live.md', RESULTS), md);
process.stdout.write(md);
