// Benchmark: for the 24-hour demo city (2,000 entities) and a larger one (10,000 entities, same
// day), on each dialect (a fresh embedded PostgreSQL 15, and a fresh TimescaleDB 2.22.1 server on
// Debian's PostgreSQL 15), the seed rate, the aggregate refresh, "state at T" against the naive
// DISTINCT ON query, the raw pg-cursor read rate, the backup's size and its restore checked, and
// the replay figures (replay-bench.ts); on plain PostgreSQL also the naive server's
// scan-from-start state and OFFSET/LIMIT polling (naive-baseline.ts) and the Kafka baseline. All
// in one run, so every ratio (TimescaleDB against PostgreSQL too) compares figures taken side by side.
// Usage: npm run bench [-- <dataset prefix>] [-- --dialects=postgres,timescaledb]
//        (writes load/results/bench.{json,md,html})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import Cursor from 'pg-cursor';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { DEMO_CITY, installDemo, seedDemoHistory, type CityModel } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import { naivePollRate, naiveScanState } from './naive-baseline.js';
import { kafkaStateAt, loadTopics } from './kafka-baseline.js';
import { percentile } from './percentile.js';
import { replayBench, type ReplayFigures } from './replay-bench.js';
import { startBenchDatabase } from './bench-database.js';
import { htmlReport } from './report.js';
import { startKafkaCluster } from '../scripts/services/kafka-cluster.js';
import { backupFigures, type BackupFigures } from './backup-bench.js';
import { REFRESH_AGGREGATE } from '../server/db/sql-fragments.js';

const log = createLogger('warn');
const RESULTS = new URL('./results/', import.meta.url);
const DATASETS: { name: string; city: CityModel }[] = [
  { name: 'demo city (2,000 entities)', city: DEMO_CITY },
  // 10,000 vehicles reporting every 5 to 9 minutes: about 2 million events in 24 hours.
  { name: 'large city (10,000 entities)', city: { vehicles: 10_000, minPeriodS: 300, periodSpreadS: 261 } },
];

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

export interface DatasetFigures {
  name: string;
  dialect: Dialect;
  seed: { events: number; ms: number; eventsPerSecond: number };
  aggregateRefreshMs: number;
  stateAtT: { entities: number; p50Ms: number; p95Ms: number };
  naiveDistinctOn: { p50Ms: number; p95Ms: number };
  rawCursor: { rows: number; rowsPerSecond: number };
  /** The naive server: state at T by folding from the start; one session polling with OFFSET/LIMIT. */
  naiveServer?: {
    scanState: { p50Ms: number; entities: number; rows: number };
    poll: { rows: number; rowsPerSecond: number; lastPageMs: number };
  };
  /** Baseline (c): state at T folded straight from the Kafka change topics. */
  kafka?: {
    records: number;
    megabytes: number;
    produceMs: number;
    p50Ms: number;
    foldP50Ms: number;
    recordsP50: number;
    recordsPerSecond: number;
    /** Entities at each fold time: ours (SQL) and Kafka's fold; they must agree. */
    entities: { ours: number; kafka: number }[];
  };
  backup: BackupFigures;
  replay: ReplayFigures;
}

async function benchDataset(
  name: string,
  city: CityModel,
  dialect: Dialect,
  brokers: string[],
  topicPrefix: string,
): Promise<DatasetFigures> {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-bench-'));
  const database = await startBenchDatabase(dialect, dir);
  // The baselines do not depend on MSR's dialect: they run once, beside plain PostgreSQL.
  const baselines = dialect === 'postgres';
  const pool = createPool(database.url, 4, log);
  try {
    await migrate(pool, log);
    await installDemo(pool);
    const seed = (await seedDemoHistory(pool, log, { city }))!;
    const refreshMs = await timed(() => pool.query(REFRESH_AGGREGATE));
    await pool.query('analyze msr.entity_last_states');

    const earliest = seed.epoch.getTime();
    const latest = earliest + 24 * 3_600_000;
    const times = Array.from(
      { length: 30 },
      (_, i) => earliest + (((i * 7919) % 1000) / 1000) * (latest - earliest),
    );
    /** How many entities our state at t holds (the query timed as "state at T"). */
    const entitiesAt = async (t: number) =>
      (
        await pool.query<{ n: number }>(
          `select count(*)::int as n from msr.entity_states_at(to_timestamp($1 / 1000.0))`,
          [t],
        )
      ).rows[0]!.n;
    const keyframe: number[] = [];
    let entities = 0;
    for (const t of times) keyframe.push(await timed(async () => (entities = await entitiesAt(t))));
    const naive: number[] = [];
    // The baselines that read every event up to T run at fixed points of the day (a quarter, half and
    // three quarters in); the naive DISTINCT ON at five; ours at the 30 spread times above.
    const at = (fraction: number) => Math.round(earliest + fraction * (latest - earliest));
    const foldTimes = [0.25, 0.5, 0.75].map(at);
    for (const t of [0.1, 0.3, 0.5, 0.7, 0.9].map(at)) {
      naive.push(
        await timed(() =>
          pool.query(
            `select count(*) from (
               select distinct on (source, table_schema, table_name, entity_id) op from msr.cdc_event
                where event_timestamp <= to_timestamp($1 / 1000.0)
                order by source, table_schema, table_name, entity_id, event_timestamp desc, id desc) x
              where op not in ('d', 't')`,
            [t],
          ),
        ),
      );
    }
    const client = await pool.connect();
    let rows = 0;
    const cursorMs = await timed(async () => {
      const cursor = client.query(new Cursor(`select * from msr.cdc_event order by event_timestamp, id`));
      for (;;) {
        const batch = await cursor.read(5000);
        if (batch.length === 0) break;
        rows += batch.length;
      }
      await cursor.close();
    });
    client.release();

    const scans = [];
    for (const t of baselines ? foldTimes : []) scans.push(await naiveScanState(pool, t));
    const poll = baselines ? await naivePollRate(pool, earliest, 200) : undefined;
    const naiveServer = poll && {
      scanState: {
        p50Ms: Math.round(
          percentile(
            scans.map((s) => s.ms),
            50,
          ),
        ),
        entities: scans[1]!.entities,
        rows: Math.round(
          percentile(
            scans.map((s) => s.rows),
            50,
          ),
        ),
      },
      poll,
    };

    const loaded = baselines ? await loadTopics(pool, brokers, topicPrefix) : undefined;
    const folds = [];
    const agreement = [];
    for (const t of loaded ? foldTimes : []) {
      const fold = await kafkaStateAt(brokers, loaded!.topics, t);
      folds.push(fold);
      agreement.push({ ours: await entitiesAt(t), kafka: fold.entities });
    }
    const median = (values: number[]) => Math.round(percentile(values, 50));
    const kafka = loaded && {
      records: loaded.records,
      megabytes: loaded.megabytes,
      produceMs: loaded.ms,
      p50Ms: median(folds.map((f) => f.ms)),
      foldP50Ms: median(folds.map((f) => f.foldMs)),
      recordsP50: median(folds.map((f) => f.records)),
      recordsPerSecond: median(folds.map((f) => (f.records / f.foldMs) * 1000)),
      entities: agreement,
    };

    const backup = await backupFigures(pool, database.url, [0.25, 0.5, 0.75].map(at));
    const replay = await replayBench(database.url, earliest, latest);
    return {
      name,
      dialect,
      seed: { events: seed.events, ms: seed.ms, eventsPerSecond: Math.round((seed.events / seed.ms) * 1000) },
      aggregateRefreshMs: Math.round(refreshMs),
      stateAtT: {
        entities,
        p50Ms: Math.round(percentile(keyframe, 50)),
        p95Ms: Math.round(percentile(keyframe, 95)),
      },
      naiveDistinctOn: { p50Ms: Math.round(percentile(naive, 50)), p95Ms: Math.round(percentile(naive, 95)) },
      rawCursor: { rows, rowsPerSecond: Math.round((rows / cursorMs) * 1000) },
      naiveServer,
      kafka,
      backup,
      replay,
    };
  } finally {
    await pool.end();
    await database.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function report(machine: string, results: DatasetFigures[]): string {
  const lines = [
    '# MSR benchmark',
    '',
    `Machine: ${machine}. The server runs in the benchmark's process; every client (seeks, max speed, ` +
      'the 1x session matrix, idle sockets, slow clients) in a Node process of its own. ' +
      'Memory is the server process after a forced GC.',
    '',
  ];
  lines.push(...dialectComparison(results));
  for (const r of results) {
    const { replay } = r;
    lines.push(
      `## ${r.name}, ${DIALECT_NAMES[r.dialect]}`,
      '',
      '| measure | value |',
      '| --- | --- |',
      `| demo seed | ${r.seed.events} events in ${r.seed.ms} ms (${r.seed.eventsPerSecond} events/s) |`,
      `| entity_last_states refresh | ${r.aggregateRefreshMs} ms |`,
      `| state at T (${r.stateAtT.entities} entities, SQL), p50 / p95 | ${r.stateAtT.p50Ms} / ${r.stateAtT.p95Ms} ms |`,
      `| naive DISTINCT ON, p50 / p95 | ${r.naiveDistinctOn.p50Ms} / ${r.naiveDistinctOn.p95Ms} ms (${(r.naiveDistinctOn.p50Ms / r.stateAtT.p50Ms).toFixed(1)}x ours at p50) |`,
      ...(r.naiveServer
        ? [
            `| naive server: state at T by folding from the start (${r.naiveServer.scanState.rows} rows), p50 | ${r.naiveServer.scanState.p50Ms} ms (${(r.naiveServer.scanState.p50Ms / r.stateAtT.p50Ms).toFixed(1)}x ours at p50) |`,
            `| naive server: one session polling OFFSET/LIMIT 1000, 200 pages | ${r.naiveServer.poll.rowsPerSecond} rows/s, last page ${r.naiveServer.poll.lastPageMs} ms (one connection per session) |`,
          ]
        : []),
      ...(r.kafka
        ? [
            `| Kafka: state at T by folding the change topics from the start (${r.kafka.recordsP50} records), p50 | ${r.kafka.p50Ms} ms with consumer start and group join, the fold alone ${r.kafka.foldP50Ms} ms at ${r.kafka.recordsPerSecond} records/s (${(r.kafka.p50Ms / r.stateAtT.p50Ms).toFixed(1)}x ours at p50) |`,
            `| Kafka: the change topics | ${r.kafka.records} records, ${r.kafka.megabytes} MiB of schemaless Debezium JSON, produced in ${r.kafka.produceMs} ms |`,
            `| entities at the fold times, ours / Kafka's fold | ${r.kafka.entities.map((e) => `${e.ours} / ${e.kafka}`).join(', ')} |`,
          ]
        : []),
      `| raw pg-cursor read (all columns) | ${r.rawCursor.rows} rows at ${r.rawCursor.rowsPerSecond} rows/s |`,
      `| backup (pg_dump -Fc of the database) | ${r.backup.megabytes} MB in ${r.backup.backupMs} ms, ${r.backup.mbPerMillionEvents} MB per million events; restored in ${r.backup.restoreMs} ms: ${r.backup.restoredEvents} events, state equal at ${r.backup.statesEqual} of ${r.backup.statesChecked} times |`,
      `| seek to first keyframe byte, p50 / p95 (WebSocket) | ${replay.seek.firstByteP50} / ${replay.seek.firstByteP95} ms |`,
      `| seek to complete keyframe, p50 / p95 | ${replay.seek.completeP50} / ${replay.seek.completeP95} ms |`,
      `| one session at max speed | ${replay.maxSpeed.eventsPerSecond} events/s (${Math.round((replay.maxSpeed.eventsPerSecond / r.rawCursor.rowsPerSecond) * 100)} % of the raw cursor) |`,
      `| server RSS growth per idle socket / per playing 1x session (after GC) | ${replay.memory.idleSocketKb} / ${replay.memory.playingSessionKb} KiB (JS heap per session ${replay.memory.playingSessionHeapKb ?? '?'} KiB) |`,
      '',
      '| 1x sessions | all opened in | frames in 10 s | lateness p50 / p99 | database connections | CPU: server / its PostgreSQL backends / clients (% of a core) |',
      '| --- | --- | --- | --- | --- | --- |',
      ...replay.concurrent.map(
        (c) =>
          `| ${c.sessions} | ${c.openSeconds} s | ${c.frames} | ${c.latenessP50} / ${c.latenessP99} ms | ${c.dbConnections} | ${c.serverCpuPct ?? '?'} / ${c.databaseCpuPct ?? '?'} / ${c.clientsCpuPct ?? '?'} |`,
      ),
      '',
      'Lateness: when a frame arrived at the client minus when its replay time was due on the session clock, ' +
        "anchored at the play's first clock message (negative: earlier than that anchor predicts, as the anchor itself came a few ms late). " +
        'CPU: the server process, its pool connections to PostgreSQL, and the clients, over the 10 s window.',
      '',
      ...(replay.profile500
        ? [
            `Where the server's time goes with 500 playing sessions (a second 500-session run, CPU-profiled for 10 s; lateness p50 / p99 ${replay.profile500.latenessP50} / ${replay.profile500.latenessP99} ms), self time:`,
            '',
            '| function | self time |',
            '| --- | --- |',
            ...replay.profile500.hot.map((h) => `| ${h.name.replace(/\|/g, '\\|')} | ${h.selfPct} % |`),
            '',
          ]
        : []),
      ...(replay.slowClients
        ? [
            `Slow clients: ${replay.slowClients.clients} sockets stopped reading while their sessions played at 100x for ${replay.slowClients.seconds} s: ` +
              `${replay.slowClients.coalescedFrames} coalesced frames, server RSS growth at the peak ${replay.slowClients.rssGrowthKbPerClient} KiB per client ` +
              `(JS heap ${replay.slowClients.heapGrowthKbPerClient ?? '?'} KiB; ${replay.slowClients.rssAfterCloseKbPerClient ?? '?'} KiB after they were closed), ` +
              `${replay.slowClients.closedTooSlow} closed with 4008 (too slow).`,
            '',
          ]
        : []),
    );
  }
  return lines.join('\n');
}

const DIALECT_NAMES: Record<Dialect, string> = {
  postgres: 'plain PostgreSQL 15 (embedded)',
  timescaledb: 'TimescaleDB 2.22.1 (PostgreSQL 15)',
};

/** TimescaleDB against plain PostgreSQL on the same data, one row per measure, per dataset. */
function dialectComparison(results: readonly DatasetFigures[]): string[] {
  const lines: string[] = [];
  for (const name of new Set(results.map((r) => r.name))) {
    const pg = results.find((r) => r.name === name && r.dialect === 'postgres');
    const ts = results.find((r) => r.name === name && r.dialect === 'timescaledb');
    if (!pg || !ts) continue;
    const row = (measure: string, a: number, b: number, unit: string) =>
      `| ${measure} | ${a} ${unit} | ${b} ${unit} | ${(b / a).toFixed(2)}x |`;
    lines.push(
      `## ${name}: TimescaleDB against plain PostgreSQL`,
      '',
      '| measure | PostgreSQL | TimescaleDB | TimescaleDB / PostgreSQL |',
      '| --- | --- | --- | --- |',
      row('state at T (SQL), p50', pg.stateAtT.p50Ms, ts.stateAtT.p50Ms, 'ms'),
      row('state at T (SQL), p95', pg.stateAtT.p95Ms, ts.stateAtT.p95Ms, 'ms'),
      row('seek to first keyframe byte, p50', pg.replay.seek.firstByteP50, ts.replay.seek.firstByteP50, 'ms'),
      row('seek to complete keyframe, p50', pg.replay.seek.completeP50, ts.replay.seek.completeP50, 'ms'),
      row('seek to complete keyframe, p95', pg.replay.seek.completeP95, ts.replay.seek.completeP95, 'ms'),
      row(
        'one session at max speed',
        pg.replay.maxSpeed.eventsPerSecond,
        ts.replay.maxSpeed.eventsPerSecond,
        'events/s',
      ),
      ...pg.replay.concurrent.flatMap((c) => {
        const t = ts.replay.concurrent.find((x) => x.sessions === c.sessions);
        return t ? [row(`${c.sessions} 1x sessions: lateness p99`, c.latenessP99, t.latenessP99, 'ms')] : [];
      }),
      row('aggregate refresh', pg.aggregateRefreshMs, ts.aggregateRefreshMs, 'ms'),
      row('backup size per million events', pg.backup.mbPerMillionEvents, ts.backup.mbPerMillionEvents, 'MB'),
      row('backup restore', pg.backup.restoreMs, ts.backup.restoreMs, 'ms'),
      '',
    );
  }
  return lines;
}

const dialectsArg = process.argv.find((a) => a.startsWith('--dialects='))?.slice('--dialects='.length);
const dialects = (dialectsArg ?? 'postgres,timescaledb').split(',') as Dialect[];
const only = process.argv.slice(2).find((a) => !a.startsWith('--'));
const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform} ${process.arch}, node ${process.version}; ${dialects.map((d) => DIALECT_NAMES[d]).join(' and ')}`;
const results: DatasetFigures[] = [];
const kafkaDir = await mkdtemp(path.join(tmpdir(), 'msr-bench-kafka-'));
const cluster = await startKafkaCluster(kafkaDir, { connect: false });
try {
  for (const [i, dataset] of DATASETS.entries()) {
    if (only && !dataset.name.startsWith(only)) continue;
    for (const dialect of dialects) {
      results.push(await benchDataset(dataset.name, dataset.city, dialect, cluster.brokers, `bench${i}.`));
    }
  }
} finally {
  await cluster.stop();
  await rm(kafkaDir, { recursive: true, force: true });
}
await mkdir(RESULTS, { recursive: true });
await writeFile(new URL('bench.json', RESULTS), `${JSON.stringify({ machine, results }, null, 2)}\n`);
const md = report(machine, results);
await writeFile(new URL('bench.md', RESULTS), md);
await writeFile(new URL('bench.html', RESULTS), htmlReport(machine, results, md));
process.stdout.write(`${md}\n`);
