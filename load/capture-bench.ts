// Capture benchmark: a pgbench workload (scale 2, its four tables with REPLICA IDENTITY FULL;
// pgbench_history has no primary key) on a source PostgreSQL 15 of its own, captured into a
// second PostgreSQL 15 (MSR's database) three ways in one run: MSR's built-in capture (logical
// replication, pgoutput) straight into the database, the same capture into Kafka
// (CAPTURE_TO=kafka, stored by MSR's ingest in the same process), and Debezium in Kafka Connect
// into Kafka, then MSR's Kafka ingest.
// Measured: the initial snapshot, the rate each way drains the same backlog of changes, the time
// from source commit to stored (ingested_at - event_timestamp) and to a live session's frame
// while pgbench runs at 500 transactions (2,000 row changes) a second, memory of each
// capturing process (the rate phase runs the direct capture and Debezium only), and last how long
// after Debezium's initial snapshot of the source has reached Kafka MSR has stored it.
// Usage: npm run bench:capture [-- --profile]   (writes load/results/capture.{json,md}; needs
// Debian's pgbench)
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '@msr/protocol';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../server/db/embedded.js';
import { createLogger } from '../server/logger.js';
import { startKafkaCluster, type KafkaCluster } from '../scripts/services/kafka-cluster.js';
import { percentile } from './percentile.js';
import { peakRssMb, rssMb, startMsrProcess, type MsrProcess } from './msr-process.js';

const run = promisify(execFile);
const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';
const RESULTS = new URL('./results/', import.meta.url);
const BACKLOG_TRANSACTIONS = 25_000;
const RATE_TPS = 500;
const RATE_SECONDS = 20;
// The default: the live edge follows what the capture has stored, whatever the trail is.
const LIVE_DELAY_MS = 1_000;
const log = createLogger('warn');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// --profile: each MSR process writes a CPU profile (.cpuprofile) into load/results/ as it exits.
const profileDir = process.argv.includes('--profile') ? RESULTS.pathname : undefined;
const startServer = (env: Record<string, string>) => startMsrProcess(env, { profileDir });

async function count(msr: pg.Pool, source: string, where = 'true'): Promise<number> {
  const { rows } = await msr.query<{ n: number }>(
    `select count(*)::int as n from msr.cdc_event where source = $1 and ${where}`,
    [source],
  );
  return rows[0]!.n;
}

/** Waits until `source` has `target` stored events; returns when the first and last arrived (ms). */
async function drained(
  msr: pg.Pool,
  source: string,
  target: number,
  since: Date,
): Promise<{ ms: number; events: number }> {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    if ((await count(msr, source, `ingested_at >= '${since.toISOString()}'`)) >= target) break;
    await sleep(250);
  }
  const { rows } = await msr.query<{ first: Date; last: Date; n: number }>(
    `select min(ingested_at) as first, max(ingested_at) as last, count(*)::int as n
       from msr.cdc_event where source = $1 and ingested_at >= $2`,
    [source, since],
  );
  // ingested_at is the storing transaction's start: the drain ends with the last batch's commit.
  return { ms: Math.max(1, rows[0]!.last.getTime() - rows[0]!.first.getTime()), events: rows[0]!.n };
}

/** Waits until no new event of `source` has been stored for 3 s. */
async function settled(msr: pg.Pool, source: string): Promise<void> {
  let last = -1;
  for (;;) {
    const n = await count(msr, source);
    if (n === last) return;
    last = n;
    await sleep(3_000);
  }
}

async function pgbench(url: string, args: string[]): Promise<void> {
  const u = new URL(url);
  await run(
    PGBENCH,
    ['-h', u.hostname, '-p', u.port, '-U', decodeURIComponent(u.username), ...args, u.pathname.slice(1)],
    {
      env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) },
      maxBuffer: 16 << 20,
    },
  );
}

/** Commit-to-stored latency of the changes stored in a window, from the rows themselves. */
async function storedLatency(msr: pg.Pool, source: string, from: Date, to: Date) {
  const { rows } = await msr.query<{ ms: number }>(
    `select extract(epoch from ingested_at - event_timestamp) * 1000 as ms
       from msr.cdc_event where source = $1 and op <> 'r' and event_timestamp between $2 and $3`,
    [source, from, to],
  );
  const ms = rows.map((r) => Number(r.ms));
  return { changes: ms.length, p50Ms: Math.round(percentile(ms, 50)), p99Ms: Math.round(percentile(ms, 99)) };
}

/**
 * A live session following pgbench_accounts at the edge: each change's arrival minus its commit
 * time. It plays at "max", so it catches up with what was committed while its 200,000-entity
 * keyframe was sent and then follows the edge; changes committed before it caught up (2 s after
 * the keyframe's last part) are not counted.
 */
async function liveLatency(
  port: number,
  seconds: number,
): Promise<{
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  changes: number;
  keyframeMs: number;
  countedFrom: Date;
}> {
  const client = await ReplayClient.connect(`ws://127.0.0.1:${port}/v1/replay`, {
    webSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
    validate: false,
  });
  const lateness: number[] = [];
  let countFrom = Infinity;
  client.on((message) => {
    if (message.type !== 'frame') return;
    const now = Date.now();
    for (const change of message.changes) if (change.ts >= countFrom) lateness.push(now - change.ts);
  });
  const now = Date.now();
  const keyframe = client.waitFor((m) => m.type === 'keyframe' && m.last, 60_000);
  await client.open({
    from: now - 1_000,
    to: now + 3_600_000,
    at: now,
    speed: 'max',
    tables: ['public.pgbench_accounts'],
  });
  await keyframe;
  const keyframeMs = Date.now() - now;
  countFrom = Date.now() + 2_000;
  await client.play();
  await sleep(seconds * 1000 - keyframeMs);
  await client.close().catch(() => undefined);
  return {
    changes: lateness.length,
    p50Ms: Math.round(percentile(lateness, 50)),
    p90Ms: Math.round(percentile(lateness, 90)),
    p99Ms: Math.round(percentile(lateness, 99)),
    maxMs: Math.round(Math.max(...lateness)),
    keyframeMs,
    countedFrom: new Date(countFrom),
  };
}

/** A Debezium connector on the source (pgoutput, the `msr` publication, JSON with schemas). */
async function putConnector(
  cluster: KafkaCluster,
  sourceUrl: string,
  name: string,
  settings: Record<string, string>,
): Promise<void> {
  const source = new URL(sourceUrl);
  const response = await fetch(`${cluster.connectUrl}/connectors/${name}/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'database.hostname': '127.0.0.1',
      'database.port': source.port,
      'database.user': 'postgres',
      'database.password': decodeURIComponent(source.password),
      'database.dbname': 'msr',
      'plugin.name': 'pgoutput',
      'publication.name': 'msr',
      'publication.autocreate.mode': 'disabled',
      'skipped.operations': 'none',
      'decimal.handling.mode': 'precise',
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      ...settings,
    }),
  });
  if (!response.ok) throw new Error(`connector ${name}: ${response.status} ${await response.text()}`);
}

/**
 * Debezium's initial snapshot of the whole source, stored by an MSR ingest consuming it as it
 * arrives (default batch size): when its last record reached Kafka (the topics' end offsets,
 * polled every 100 ms) and how long after that MSR had stored every row.
 */
async function debeziumSnapshot(
  cluster: KafkaCluster,
  sourcePool: pg.Pool,
  msr: pg.Pool,
  ingest: MsrProcess,
): Promise<{ rows: number; inKafkaMs: number; storedAfterLastRecordMs: number; peakRssMb: number }> {
  const tables = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];
  const { rows } = await sourcePool.query<{ n: string }>(
    `select ${tables.map((t) => `(select count(*) from ${t})`).join(' + ')} as n`,
  );
  const total = Number(rows[0]!.n);
  const kafka = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topics = tables.map((table) => `snapshot.public.${table}`);
  const inKafka = async () => {
    let n = 0;
    for (const topic of topics) {
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => []);
      for (const o of offsets) n += Number(o.high);
    }
    return n;
  };
  // The group commits a batch's offsets after its database commit: committed offsets that reach
  // the end mean every record is stored, and polling them costs the database nothing.
  const committed = async () => {
    const groups = await admin.fetchOffsets({ groupId: 'snapshot', topics }).catch(() => []);
    return groups.flatMap((g) => g.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  };
  try {
    const requested = Date.now();
    await putConnector(cluster, sourcePool.options.connectionString!, 'snapshot', {
      'topic.prefix': 'snapshot',
      'slot.name': 'debezium_snapshot',
      'snapshot.mode': 'initial',
    });
    const deadline = Date.now() + 600_000;
    while ((await inKafka()) < total && Date.now() < deadline) await sleep(100);
    const lastRecordAt = Date.now();
    while ((await committed()) < total && Date.now() < deadline) await sleep(100);
    const storedAt = Date.now();
    const stored = await count(msr, 'snapshot', `op = 'r'`);
    if (stored !== total) throw new Error(`Debezium's snapshot: ${stored} rows stored of ${total}`);
    return {
      rows: total,
      inKafkaMs: lastRecordAt - requested,
      storedAfterLastRecordMs: storedAt - lastRecordAt,
      peakRssMb: await peakRssMb(ingest.child.pid!),
    };
  } finally {
    await admin.disconnect();
  }
}

const dirs: string[] = [];
const started: { stop(): Promise<void> }[] = [];
const figures: Record<string, unknown> = {};
try {
  const dir = async (name: string) => {
    const d = await mkdtemp(path.join(tmpdir(), `msr-capture-${name}-`));
    dirs.push(d);
    return d;
  };
  const source: EmbeddedDatabase = await startEmbeddedDatabase(await dir('source'), 0, log);
  started.push(source);
  const target: EmbeddedDatabase = await startEmbeddedDatabase(await dir('msr'), 0, log);
  started.push(target);
  const cluster = await startKafkaCluster(await dir('kafka'));
  started.push(cluster);
  const sourcePool = new pg.Pool({ connectionString: source.url, max: 2 });
  const msr = new pg.Pool({ connectionString: target.url, max: 2 });

  await pgbench(source.url, ['-i', '-s', '2', '-q']);
  await sourcePool.query(`
    alter table pgbench_accounts replica identity full;
    alter table pgbench_branches replica identity full;
    alter table pgbench_tellers replica identity full;
    alter table pgbench_history replica identity full;
    create publication msr for table pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history;`);
  const sourceRows = 200_000 + 20 + 2;

  // 1. The built-in capture's initial snapshot, then it stops; Debezium's slot is made meanwhile.
  const captureEnv = {
    DATABASE_URL: target.url,
    CAPTURE_SOURCE_URL: source.url,
    CAPTURE_SOURCE_NAME: 'builtin',
    DB_POOL_SIZE: '4',
    // The live session below measures how soon a change is played; the edge moves with what the
    // capture stored, so the trail only matters while the capture is behind.
    LIVE_DELAY_MS: String(LIVE_DELAY_MS),
  };
  let capture = await startServer(captureEnv);
  const snapshotStarted = Date.now();
  while ((await count(msr, 'builtin', `op = 'r'`)) < sourceRows) await sleep(200);
  figures.snapshot = { rows: sourceRows, ms: Date.now() - snapshotStarted };
  await capture.stop();
  await sourcePool.query(`select pg_create_logical_replication_slot('debezium', 'pgoutput')`);
  // The same capture into Kafka: its own slot and initial snapshot (sent to Kafka, stored by the
  // ingest of the same process), then it stops too.
  const toKafkaEnv = {
    ...captureEnv,
    CAPTURE_SOURCE_NAME: 'tokafka',
    CAPTURE_TO: 'kafka',
    KAFKA_BROKERS: cluster.brokers.join(','),
    KAFKA_TOPIC_PATTERN: '^tokafka\\.',
    KAFKA_GROUP_ID: 'tokafka',
    KAFKA_MAX_BATCH_BYTES: '4194304',
  };
  let toKafka = await startServer(toKafkaEnv);
  started.push(toKafka);
  const toKafkaSnapshotStarted = Date.now();
  while ((await count(msr, 'tokafka', `op = 'r'`)) < sourceRows) await sleep(200);
  figures.snapshotThroughKafka = { rows: sourceRows, ms: Date.now() - toKafkaSnapshotStarted };
  await toKafka.stop();

  // 2. One backlog for both: pgbench transactions while neither streams.
  await pgbench(source.url, ['-c', '4', '-j', '2', '-t', String(BACKLOG_TRANSACTIONS / 4), '-n']);
  const backlog = BACKLOG_TRANSACTIONS * 4; // tpcb-like: three updates and one insert each

  const t1 = new Date();
  capture = await startServer(captureEnv);
  started.push(capture);
  const builtin = await drained(msr, 'builtin', backlog, t1);
  const captureRss = await peakRssMb(capture.child.pid!);
  const tk = new Date();
  toKafka = await startServer(toKafkaEnv);
  started.push(toKafka);
  const throughKafka = await drained(msr, 'tokafka', backlog, tk);
  const toKafkaRss = await peakRssMb(toKafka.child.pid!);
  await toKafka.stop();

  const ingest = await startServer({
    DATABASE_URL: target.url,
    KAFKA_BROKERS: cluster.brokers.join(','),
    KAFKA_TOPIC_PATTERN: '^debezium\\.',
    KAFKA_MAX_BATCH_BYTES: '4194304',
    DB_POOL_SIZE: '4',
  });
  started.push(ingest);
  const t2 = new Date();
  await putConnector(cluster, source.url, 'bench', {
    'topic.prefix': 'debezium',
    'slot.name': 'debezium',
    'snapshot.mode': 'no_data',
  });
  const debezium = await drained(msr, 'debezium', backlog, t2);
  const ingestRss = await peakRssMb(ingest.child.pid!);
  const connectRss = cluster.connectPid ? await rssMb(cluster.connectPid) : NaN;
  figures.backlog = {
    changes: backlog,
    builtinEventsPerSecond: Math.round((builtin.events / builtin.ms) * 1000),
    toKafkaEventsPerSecond: Math.round((throughKafka.events / throughKafka.ms) * 1000),
    debeziumEventsPerSecond: Math.round((debezium.events / debezium.ms) * 1000),
    builtinMs: builtin.ms,
    toKafkaMs: throughKafka.ms,
    debeziumMs: debezium.ms,
  };

  // 3. pgbench at 500 transactions (2,000 row changes) a second, captured one way at a time.
  const connector = (action: 'pause' | 'resume') =>
    fetch(`${cluster.connectUrl}/connectors/bench/${action}`, { method: 'PUT' });
  await connector('pause');
  await sleep(2_000);
  const atRate = async () => {
    const from = new Date();
    await pgbench(source.url, [
      '-c',
      '4',
      '-j',
      '2',
      '-R',
      String(RATE_TPS),
      '-T',
      String(RATE_SECONDS),
      '-n',
    ]);
    await sleep(5_000);
    return { from, to: new Date() };
  };
  const live = liveLatency(capture.port, RATE_SECONDS);
  const builtinWindow = await atRate();
  const liveBuiltin = await live;
  const builtinStored = await storedLatency(msr, 'builtin', builtinWindow.from, builtinWindow.to);
  const captureRssAtRate = await peakRssMb(capture.child.pid!);
  await capture.stop();
  await connector('resume');
  await settled(msr, 'debezium');
  const debeziumWindow = await atRate();
  figures.at2000RowsPerSecond = {
    builtinStored,
    // The same, over the stretch the live session counted (its keyframe is being sent before it).
    builtinStoredWhileLive: await storedLatency(msr, 'builtin', liveBuiltin.countedFrom, builtinWindow.to),
    debeziumStored: await storedLatency(msr, 'debezium', debeziumWindow.from, debeziumWindow.to),
    builtinLiveSession: liveBuiltin,
  };
  figures.memory = {
    // After the snapshot process ended: the streaming process's peak through the backlog, then
    // after the rate phase, whose live session also received a 200,000-entity keyframe.
    builtinCaptureMsrPeakRssMb: captureRss,
    toKafkaCaptureAndIngestMsrPeakRssMb: toKafkaRss,
    builtinWithLiveSessionPeakRssMb: captureRssAtRate,
    kafkaIngestMsrPeakRssMb: Math.max(ingestRss, await peakRssMb(ingest.child.pid!)),
    kafkaConnectRssMb: connectRss,
  };
  figures.debeziumSnapshot = await debeziumSnapshot(
    cluster,
    sourcePool,
    msr,
    await startServer({
      DATABASE_URL: target.url,
      KAFKA_BROKERS: cluster.brokers.join(','),
      KAFKA_TOPIC_PATTERN: '^snapshot\\.',
      KAFKA_GROUP_ID: 'snapshot',
      DB_POOL_SIZE: '4',
    }).then((server) => {
      started.push(server);
      return server;
    }),
  );
  const equal = await msr.query(
    `select (select count(*) from msr.cdc_event where source = 'builtin' and op <> 'r')::int as builtin,
            (select count(*) from msr.cdc_event where source = 'tokafka' and op <> 'r')::int as tokafka,
            (select count(*) from msr.cdc_event where source = 'debezium')::int as debezium`,
  );
  figures.storedChanges = equal.rows[0];
  await sourcePool.end();
  await msr.end();
} finally {
  for (const s of started.reverse()) await s.stop().catch(() => undefined);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const b = figures.backlog as Record<
  | 'changes'
  | 'builtinEventsPerSecond'
  | 'toKafkaEventsPerSecond'
  | 'debeziumEventsPerSecond'
  | 'builtinMs'
  | 'toKafkaMs'
  | 'debeziumMs',
  number
>;
const r = figures.at2000RowsPerSecond as Record<string, Record<string, number>>;
const m = figures.memory as Record<string, number>;
const ds = figures.debeziumSnapshot as Awaited<ReturnType<typeof debeziumSnapshot>>;
const md = [
  '# Capture benchmark',
  '',
  `Machine: ${machine}. Source: pgbench scale 2 on PostgreSQL 15 (embedded), MSR's database a second PostgreSQL 15.`,
  '',
  '| figure | built-in capture | Debezium + Kafka + MSR ingest |',
  '| --- | --- | --- |',
  `| initial snapshot (${(figures.snapshot as { rows: number }).rows} rows) | ${(figures.snapshot as { ms: number }).ms} ms | (not measured) |`,
  `| backlog of ${b.changes} changes drained | ${b.builtinEventsPerSecond} events/s (${b.builtinMs} ms) | ${b.debeziumEventsPerSecond} events/s (${b.debeziumMs} ms) |`,
  `| ratio | ${(b.builtinEventsPerSecond / b.debeziumEventsPerSecond).toFixed(1)}x | 1x |`,
  `| commit to stored at 2,000 rows/s, p50 / p99 | ${r.builtinStored!.p50Ms} / ${r.builtinStored!.p99Ms} ms | ${r.debeziumStored!.p50Ms} / ${r.debeziumStored!.p99Ms} ms |`,
  `| commit to a live session's frame at the edge (speed max after its ${r.builtinLiveSession!.keyframeMs} ms keyframe; LIVE_DELAY_MS=${LIVE_DELAY_MS}), p50 / p90 / p99 / max | ${r.builtinLiveSession!.p50Ms} / ${r.builtinLiveSession!.p90Ms} / ${r.builtinLiveSession!.p99Ms} / ${r.builtinLiveSession!.maxMs} ms (commit to stored meanwhile: ${r.builtinStoredWhileLive!.p50Ms} / ${r.builtinStoredWhileLive!.p99Ms} ms) | |`,
  `| memory | MSR ${m.builtinCaptureMsrPeakRssMb} MB peak RSS through the backlog (${m.builtinWithLiveSessionPeakRssMb} MB once a live session took a 200,000-entity keyframe) | MSR ${m.kafkaIngestMsrPeakRssMb} MB peak RSS + Kafka Connect ${m.kafkaConnectRssMb} MB RSS (+ the broker) |`,
  '',
  `Built-in capture into Kafka (CAPTURE_TO=kafka; MSR's ingest in the same process stores what it sends): initial snapshot ${(figures.snapshotThroughKafka as { ms: number }).ms} ms; backlog drained at ${b.toKafkaEventsPerSecond} events/s (${b.toKafkaMs} ms, ${(b.toKafkaEventsPerSecond / b.debeziumEventsPerSecond).toFixed(1)}x Debezium's); MSR ${m.toKafkaCaptureAndIngestMsrPeakRssMb} MB peak RSS.`,
  '',
  `Debezium's initial snapshot of the source afterwards (${ds.rows} rows, snapshot.mode=initial, one partition per topic; an MSR ingest with the default batch size consuming as it arrives): its last record reached Kafka ${ds.inKafkaMs} ms after the connector was made; MSR had stored every row ${ds.storedAfterLastRecordMs} ms after that (MSR ${ds.peakRssMb} MB peak RSS).`,
  '',
  `Stored changes: ${JSON.stringify(figures.storedChanges)}.`,
  '',
].join('\n');
await mkdir(RESULTS, { recursive: true });
await writeFile(new URL('capture.json', RESULTS), `${JSON.stringify({ machine, ...figures }, null, 2)}\n`);
await writeFile(new URL('capture.md', RESULTS), md);
process.stdout.write(md);
