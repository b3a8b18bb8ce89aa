// Ingest benchmark: Debezium change events (JSON converter with schemas, as Debezium's default
// setup writes them) from a real Kafka broker into msr.cdc_event, at several batch sizes
// (KAFKA_MAX_BATCH_BYTES), next to the same rows loaded with COPY into the same table and to the
// decoding alone, all in one run, on a fresh embedded PostgreSQL 15 and a fresh TimescaleDB 2.22.1
// server (the same records from the same broker). Also: the CPU of Node, PostgreSQL and the broker
// during each run, a profile of Node's work, the writer's append and stage paths side by side,
// and the ingest in a process of its own as npm start runs it, for its own peak memory. Settings
// run twice in turns and COPY before and after them, as this machine drifts within minutes.
// Usage: npm run bench:ingest [-- <events>]   (writes load/results/ingest.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { from as copyFrom } from 'pg-copy-streams';
import { loadConfig } from '../server/config.js';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import type { Pool } from 'pg';
import { createPool } from '../server/db/pool.js';
import { Ingest } from '../server/ingest/consumer.js';
import type { ChangeEvent, StoredChange } from '../server/ingest/change.js';
import { appendChanges, insertChanges, timestampText } from '../server/ingest/staging.js';
import { inTransaction } from '../server/db/transaction.js';
import { decodeRecord } from '../server/ingest/debezium.js';
import { createLogger } from '../server/logger.js';
import { Metrics } from '../server/metrics.js';
import { startKafkaCluster } from '../scripts/services/kafka-cluster.js';
import { startBenchDatabase } from './bench-database.js';
import { cpuWindow, type CpuShares } from './cpu-usage.js';
import { debeziumRecords } from './debezium-records.js';
import { percentile } from './percentile.js';
import { profiled, type HotFunction } from './profile.js';
import { peakRssMb, startMsrProcess } from './msr-process.js';

const EVENTS = Number(process.argv[2] ?? 150_000);
// Fewer arrive in a handful of fetches, stored nearly at once: a rate from those is noise.
const MIN_EVENTS = 20_000;
if (!Number.isInteger(EVENTS) || EVENTS < MIN_EVENTS) {
  process.stderr.write(
    `bench:ingest needs at least ${MIN_EVENTS} events to time (asked: ${process.argv[2]})\n`,
  );
  process.exit(2);
}
const ENTITIES = 2_000;
const PARTITIONS = 3;
const TOPIC = 'bench.city.vehicle';
/** KAFKA_MAX_BATCH_BYTES when it is not set. */
const DEFAULT_BATCH_BYTES = loadConfig({}).kafka.maxBatchBytes;
// Each batch size with a decoding thread; the default size with decoding in place too, run just
// before its threaded twin so that the two meet the same state of the machine.
const RUNS = [
  { maxBatchBytes: 65_536, decodeThreads: 1 },
  { maxBatchBytes: 262_144, decodeThreads: 1 },
  { maxBatchBytes: 1_048_576, decodeThreads: 1 },
  { maxBatchBytes: DEFAULT_BATCH_BYTES, decodeThreads: 0 },
  { maxBatchBytes: DEFAULT_BATCH_BYTES, decodeThreads: 1 },
  { maxBatchBytes: 4 * DEFAULT_BATCH_BYTES, decodeThreads: 1 },
];
/** The batch size of the run in a process of its own, whose memory is the ingest's alone. */
const OWN_PROCESS_BATCH_BYTES = 4_194_304;
const WRITER_BATCH = 500;
const RESULTS = new URL('./results/', import.meta.url);
const log = createLogger('warn');

const csvText = (v: string | null) => (v === null ? '' : `"${v.replaceAll('"', '""')}"`);

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-ingest-bench-'));
  const cluster = await startKafkaCluster(dir, { connect: false });
  try {
    const data = debeziumRecords(EVENTS, ENTITIES);
    const bytes = data.reduce((n, r) => n + r.key.length + r.value.length, 0);

    const kafka = new Kafka({ clientId: 'bench', brokers: cluster.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    let started = performance.now();
    for (let i = 0; i < data.length; i += 500)
      await producer.send({ topic: TOPIC, messages: data.slice(i, i + 500) });
    const produceMs = performance.now() - started;
    await producer.disconnect();

    started = performance.now();
    const decoded: ChangeEvent[] = [];
    for (const r of data) {
      const d = decodeRecord({ topic: TOPIC, key: Buffer.from(r.key), value: Buffer.from(r.value) });
      if (d.kind === 'change') decoded.push(d.event);
    }
    const decodeMs = performance.now() - started;

    const dialects: Record<string, DialectResult> = {};
    for (const dialect of ['postgres', 'timescaledb'] as const) {
      dialects[dialect] = await runDialect(dialect, cluster.brokers, cluster.brokerPid!, decoded);
    }
    const result = {
      machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${process.platform} ${process.arch}, node ${process.version}, embedded PostgreSQL 15 and TimescaleDB 2.22.1 on PostgreSQL 15, Kafka 3.9.2 (one KRaft broker)`,
      events: decoded.length,
      megabytes: Math.round(bytes / 2 ** 20),
      produce: { ms: Math.round(produceMs), eventsPerSecond: Math.round(data.length / (produceMs / 1000)) },
      decodeOnly: { ms: Math.round(decodeMs), eventsPerSecond: Math.round(data.length / (decodeMs / 1000)) },
      dialects,
    };
    const md = [
      '# MSR ingest benchmark',
      '',
      `Machine: ${result.machine}. ${result.events} Debezium change events (JSON converter with schemas, ${result.megabytes} MiB) on ${PARTITIONS} partitions; the consumer and PostgreSQL share the machine with the broker.`,
      '',
      '| measure | value |',
      '| --- | --- |',
      `| produce to Kafka (kafkajs, 500 per send) | ${result.produce.eventsPerSecond} events/s |`,
      `| decoding alone (decodeRecord, one core) | ${result.decodeOnly.eventsPerSecond} events/s |`,
      '',
      ...Object.entries(dialects).flatMap(
        ([dialect, { copy, ingest, writer, hot, peakRssMb, ownProcess }]) => [
          `## ${dialect}`,
          '',
          `COPY of the same decoded rows into msr.cdc_event: ${copy.rowsPerSecond} rows/s, the mean of a run before the ingest runs and one after them (${copy.runs.map((r) => r.rowsPerSecond).join(' and ')}). Peak RSS of the benchmark process: ${peakRssMb} MB (it also holds every record and decoded row of the run).`,
          '',
          `The ingest in a process of its own, as npm start runs it (${OWN_PROCESS_BATCH_BYTES}-byte batches, ${PARTITIONS} partitions, one decoding thread): peak RSS ${ownProcess.peakRssMb} MB, ${ownProcess.eventsPerSecond} events/s (${Math.round((ownProcess.eventsPerSecond / copy.rowsPerSecond) * 100)} % of COPY).`,
          '',
          'Each setting ran twice, the second round in reverse order; the figures are the means of its two runs (each run in brackets).',
          '',
          '| KAFKA_MAX_BATCH_BYTES | KAFKA_DECODE_THREADS | events per batch | Kafka to cdc_event | vs COPY | total incl. group join | CPU: Node / PostgreSQL / broker (% of a core) |',
          '| --- | --- | --- | --- | --- | --- | --- |',
          ...ingest.map(
            (r) =>
              `| ${r.maxBatchBytes} | ${r.decodeThreads} | ${r.eventsPerBatch} | ${r.eventsPerSecond} events/s (${r.eventsPerSecondRuns.join(', ')}) | ${Math.round((r.eventsPerSecond / copy.rowsPerSecond) * 100)} % | ${r.totalMs} ms | ${r.nodeCpuPct} / ${r.postgresCpuPct} / ${r.brokerCpuPct} |`,
          ),
          '',
          `The writer's two ways into cdc_event, ${WRITER_BATCH} rows a transaction on one connection, rounds alternating (medians): a new batch appended with COPY, and a batch written through the stage with ON CONFLICT (what a redelivery takes).`,
          '',
          '| path | rows/s | PostgreSQL CPU per row |',
          '| --- | --- | --- |',
          ...writer.map((w) => `| ${w.path} | ${w.rowsPerSecond} | ${w.postgresUsPerRow} µs |`),
          '',
          `Where the Node process's main thread spends its time at ${DEFAULT_BATCH_BYTES} bytes with decoding in place (all of the ingest's work on one thread; self time, share of the run):`,
          '',
          ...hot.map((h) => `- ${h.selfPct} % ${h.name}`),
          '',
        ],
      ),
    ].join('\n');
    await mkdir(RESULTS, { recursive: true });
    await writeFile(new URL('ingest.json', RESULTS), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(new URL('ingest.md', RESULTS), md);
    process.stdout.write(`${md}\n`);
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

interface CopyRun {
  readonly ms: number;
  readonly rows: number;
  readonly rowsPerSecond: number;
}

interface DialectResult {
  readonly ingest: IngestRun[];
  /** The mean of the COPY runs before and after the ingest runs. */
  readonly copy: { readonly rowsPerSecond: number; readonly runs: readonly CopyRun[] };
  readonly writer: WriterPath[];
  readonly hot: HotFunction[];
  readonly peakRssMb: number;
  readonly ownProcess: { eventsPerSecond: number; peakRssMb: number };
}

interface WriterPath {
  readonly path: string;
  readonly rowsPerSecond: number;
  readonly postgresUsPerRow: number;
}

/** One run of one setting. */
interface IngestSample {
  readonly maxBatchBytes: number;
  readonly decodeThreads: number;
  readonly totalMs: number;
  readonly eventsPerSecond: number;
  readonly batches: number;
  readonly nodeCpuPct: number;
  readonly postgresCpuPct: number;
  readonly brokerCpuPct: number;
}

/** A setting's two runs: their means, and each run's events/s. */
interface IngestRun extends IngestSample {
  readonly eventsPerSecondRuns: readonly number[];
  readonly eventsPerBatch: number;
}

async function runDialect(
  dialect: Dialect,
  brokers: string[],
  brokerPid: number,
  decoded: readonly ChangeEvent[],
): Promise<DialectResult> {
  const dbDir = await mkdtemp(path.join(tmpdir(), `msr-ingest-bench-${dialect}-`));
  const database = await startBenchDatabase(dialect, dbDir);
  const pool = createPool(database.url, 4, log);
  try {
    await migrate(pool, log);
    const count = async () =>
      (await pool.query<{ n: number }>('select count(*)::int as n from msr.cdc_event')).rows[0]!.n;
    let peakRss = 0;
    const rss = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);
    let hot: HotFunction[] = [];
    const ingestRun = async (
      { maxBatchBytes, decodeThreads }: (typeof RUNS)[number],
      round: number,
    ): Promise<IngestSample> => {
      await pool.query('truncate msr.cdc_event');
      const metrics = new Metrics();
      const config = loadConfig({
        DATABASE_URL: database.url,
        AUTH_MODE: 'none',
        KAFKA_BROKERS: brokers.join(','),
        KAFKA_GROUP_ID: `bench-${dialect}-${maxBatchBytes}-${decodeThreads}-${round}`,
        KAFKA_TOPICS: TOPIC,
        KAFKA_MAX_BATCH_BYTES: String(maxBatchBytes),
        KAFKA_DECODE_THREADS: String(decodeThreads),
      });
      const ingest = new Ingest(pool, { ...config.kafka, brokers }, log, metrics);
      const run = async () => {
        const started = performance.now();
        // Every connection of the pool open before the run, so the PostgreSQL CPU read below sees
        // all the backends the ingest writes through.
        const warm = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
        for (const client of warm) client.release();
        ingest.start();
        let cpu: (() => Promise<CpuShares>) | undefined;
        // The ingest's own counter, not count(*): a scan of the table every 50 ms would compete with
        // the writes it measures.
        const drained = await drain(
          async () => (await metrics.ingestEvents.get()).values.reduce((sum, v) => sum + v.value, 0),
          decoded.length,
          50,
          async () => {
            const { rows } = await pool.query<{ pid: number }>(
              `select pid from pg_stat_activity where backend_type = 'client backend'`,
            );
            cpu = await cpuWindow(
              rows.map((r) => r.pid),
              [brokerPid],
            );
          },
        );
        return { started, ...drained, shares: await cpu!() };
      };
      // The default size decoding in place has all of the ingest's Node work on the main thread,
      // where the profiler sees it (in both rounds, so that they run alike).
      let measured: Awaited<ReturnType<typeof run>>;
      if (maxBatchBytes === DEFAULT_BATCH_BYTES && decodeThreads === 0) {
        const profile = await profiled(run);
        measured = profile.result;
        if (round === 0) hot = profile.hot;
      } else {
        measured = await run();
      }
      const { started, doneAt, eventsPerSecond, shares } = measured;
      await ingest.stop();
      const batches = (await metrics.ingestBatchSeconds.get()).values.find((v) =>
        v.metricName?.endsWith('_count'),
      )!.value;
      const sample = {
        maxBatchBytes,
        decodeThreads,
        totalMs: Math.round(doneAt - started),
        eventsPerSecond,
        batches,
        nodeCpuPct: shares.serverPct,
        postgresCpuPct: shares.databasePct,
        brokerCpuPct: shares.othersPct,
      };
      process.stdout.write(`${dialect} round ${round + 1}: ${JSON.stringify(sample)}\n`);
      return sample;
    };

    const copyRun = async (): Promise<CopyRun> => {
      await pool.query('truncate msr.cdc_event');
      const client = await pool.connect();
      // As for the ingest: the per-row redelivery check is for writers without ON CONFLICT.
      await client.query(`set msr.writer = 'ingest'`);
      const started = performance.now();
      try {
        const lines = function* () {
          for (let i = 0; i < decoded.length; i++) {
            const e = decoded[i]!;
            yield `${[
              timestampText(e.eventTimeUs),
              csvText(e.source),
              csvText(e.schema),
              csvText(e.table),
              csvText(e.entityId),
              e.op,
              csvText(e.before),
              csvText(e.after),
              e.lsn ?? '',
              e.txId ?? '',
              csvText(TOPIC),
              String(i % PARTITIONS),
              String(i),
            ].join(',')}\n`;
          }
        };
        await pipeline(
          Readable.from(lines()),
          client.query(
            copyFrom(
              `copy msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, before, after,
                                   lsn, tx_id, kafka_topic, kafka_partition, kafka_offset) from stdin with (format csv)`,
            ),
          ),
        );
      } finally {
        await client.query('reset msr.writer');
        client.release();
      }
      const copyMs = performance.now() - started;
      const copied = await count();
      return { ms: Math.round(copyMs), rows: copied, rowsPerSecond: Math.round(copied / (copyMs / 1000)) };
    };

    // This machine drifts by a fifth within minutes: COPY runs before and after the ingest runs,
    // and the settings run twice, the second round in reverse order, so that each setting and
    // the COPY reference meet the same drift on average.
    const copyBefore = await copyRun();
    const samples: IngestSample[] = [];
    for (const round of [0, 1]) {
      for (const setting of round === 0 ? RUNS : [...RUNS].reverse())
        samples.push(await ingestRun(setting, round));
    }
    const copyAfter = await copyRun();
    const copy = {
      rowsPerSecond: Math.round((copyBefore.rowsPerSecond + copyAfter.rowsPerSecond) / 2),
      runs: [copyBefore, copyAfter],
    };
    const mean = (values: number[]) => Math.round(values.reduce((a, b) => a + b, 0) / values.length);
    const runs: IngestRun[] = RUNS.map(({ maxBatchBytes, decodeThreads }) => {
      const mine = samples.filter(
        (r) => r.maxBatchBytes === maxBatchBytes && r.decodeThreads === decodeThreads,
      );
      const batches = mean(mine.map((r) => r.batches));
      return {
        maxBatchBytes,
        decodeThreads,
        totalMs: mean(mine.map((r) => r.totalMs)),
        eventsPerSecond: mean(mine.map((r) => r.eventsPerSecond)),
        eventsPerSecondRuns: mine.map((r) => r.eventsPerSecond),
        batches,
        eventsPerBatch: Math.round(decoded.length / batches),
        nodeCpuPct: mean(mine.map((r) => r.nodeCpuPct)),
        postgresCpuPct: mean(mine.map((r) => r.postgresCpuPct)),
        brokerCpuPct: mean(mine.map((r) => r.brokerCpuPct)),
      };
    });

    clearInterval(rss);
    const writer = await writerPaths(pool, decoded);
    await pool.query('truncate msr.cdc_event');
    return {
      ingest: runs,
      copy,
      writer,
      hot,
      peakRssMb: Math.round(peakRss / 2 ** 20),
      ownProcess: await ingestProcessRun(database.url, brokers, dialect, decoded.length),
    };
  } finally {
    await pool.end();
    await database.stop();
    await rm(dbDir, { recursive: true, force: true });
  }
}

/**
 * Polls `stored` every `pollMs` until `events` are stored (at most 10 minutes); `onFirst` runs
 * when the first batch is. The rate counts from that batch on: the events stored after it, in
 * the time they took.
 */
async function drain(
  stored: () => Promise<number>,
  events: number,
  pollMs: number,
  onFirst: () => Promise<void> = async () => undefined,
): Promise<{ doneAt: number; eventsPerSecond: number }> {
  let first: { at: number; stored: number } | undefined;
  const deadline = Date.now() + 600_000;
  for (;;) {
    const n = await stored();
    if (n > 0 && !first) {
      first = { at: performance.now(), stored: n };
      await onFirst();
    }
    if (n >= events) break;
    if (Date.now() > deadline) throw new Error(`the ingest stored ${n} of ${events} events in 10 minutes`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
  const doneAt = performance.now();
  return {
    doneAt,
    eventsPerSecond: Math.round((events - first!.stored) / ((doneAt - first!.at) / 1000)),
  };
}

/**
 * The ingest as `npm start` runs it, in a process of its own with 4 MiB batches: its peak memory
 * is the ingest's alone (this process holds every record of the run). Its rate is read from the
 * server's own counter (GET /metrics), from the first stored batch on.
 */
async function ingestProcessRun(
  databaseUrl: string,
  brokers: readonly string[],
  dialect: Dialect,
  events: number,
): Promise<{ eventsPerSecond: number; peakRssMb: number }> {
  const server = await startMsrProcess({
    DATABASE_URL: databaseUrl,
    DEMO: 'false',
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_GROUP_ID: `bench-${dialect}-own-process`,
    KAFKA_TOPICS: TOPIC,
    KAFKA_MAX_BATCH_BYTES: String(OWN_PROCESS_BATCH_BYTES),
  });
  try {
    const stored = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      return [...text.matchAll(/^msr_ingest_events_total\{[^}]*\} (\d+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    const { eventsPerSecond } = await drain(stored, events, 100);
    return {
      eventsPerSecond,
      peakRssMb: await peakRssMb(server.child.pid!),
    };
  } finally {
    await server.stop();
  }
}

/** The writer's append and stage paths, alternating over the same rows, with PostgreSQL's CPU. */
async function writerPaths(pool: Pool, decoded: readonly ChangeEvent[]): Promise<WriterPath[]> {
  const changes: StoredChange[] = decoded.map((event, i) => ({
    topic: TOPIC,
    partition: i % PARTITIONS,
    offset: String(i),
    key: null,
    value: null,
    event,
  }));
  const paths = {
    'append (COPY into cdc_event)': appendChanges,
    'stage (COPY, INSERT ... ON CONFLICT)': insertChanges,
  };
  const samples = new Map<string, { rate: number; us: number }[]>();
  for (let round = 0; round < 3; round++) {
    for (const [name, write] of Object.entries(paths)) {
      await pool.query('truncate msr.cdc_event');
      const { rows } = await pool.query<{ pid: number }>(
        `select pid from pg_stat_activity where backend_type = 'client backend'`,
      );
      const cpu = await cpuWindow(rows.map((r) => r.pid));
      const started = performance.now();
      for (let i = 0; i < changes.length; i += WRITER_BATCH) {
        await inTransaction(pool, (c) => write(c, changes.slice(i, i + WRITER_BATCH)));
      }
      const ms = performance.now() - started;
      const { databasePct } = await cpu();
      const list = samples.get(name) ?? [];
      list.push({
        rate: changes.length / (ms / 1000),
        us: ((databasePct / 100) * ms * 1000) / changes.length,
      });
      samples.set(name, list);
    }
  }
  return [...samples].map(([path, list]) => ({
    path,
    rowsPerSecond: Math.round(
      percentile(
        list.map((s) => s.rate),
        50,
      ),
    ),
    postgresUsPerRow:
      Math.round(
        percentile(
          list.map((s) => s.us),
          50,
        ) * 10,
      ) / 10,
  }));
}

await main();
