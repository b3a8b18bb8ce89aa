// The cost of encrypted connections, with and without, in one run on one machine: the ingest rate
// from Kafka (the broker's plaintext listener and plain PostgreSQL, against its SASL_SSL listener
// with SCRAM-SHA-512 and PostgreSQL with verify-full TLS) and seek latency over WebSocket (a server
// whose pool speaks plain PostgreSQL, against one whose pool speaks verify-full TLS, to the same
// database, seeking alternately to the same times). Certificates are made for the run.
// Usage: npm run bench:tls [-- <events>]   (writes load/results/tls.{json,md})
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import pg from 'pg';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '@msr/protocol';
import type { KeyframeMessage } from '@msr/protocol/messages';
import { createApp, type App } from '../server/app.js';
import { loadConfig, type Config } from '../server/config.js';
import { startEmbeddedDatabase } from '../server/db/embedded.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { DEMO_CITY, installDemo, seedDemoHistory } from '../server/demo/seed.js';
import { Ingest } from '../server/ingest/consumer.js';
import { createLogger } from '../server/logger.js';
import { Metrics } from '../server/metrics.js';
import { makeAuthority } from '../scripts/services/certificates.js';
import { serveTls } from '../scripts/services/postgres-tls.js';
import { startKafkaCluster, type KafkaCluster } from '../scripts/services/kafka-cluster.js';
import { debeziumRecords } from './debezium-records.js';
import { percentile } from './percentile.js';
import { REFRESH_AGGREGATE } from '../server/db/sql-fragments.js';

const EVENTS = Number(process.argv[2] ?? 100_000);
const TOPIC = 'bench.city.vehicle';
const SEEKS = 30;
const RESULTS = new URL('./results/', import.meta.url);
const log = createLogger('warn');

/** PostgreSQL of `url` starts speaking TLS with a certificate for localhost signed by a new CA. */
async function enableTls(url: string, dir: string): Promise<string> {
  const ca = await makeAuthority(dir, 'bench-ca');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await serveTls(admin, ca, dir);
  } finally {
    await admin.end();
  }
  return ca.certFile;
}

interface Setting {
  /** plain: neither; kafka-tls: Kafka over SASL_SSL only; tls: Kafka and PostgreSQL both. */
  readonly name: 'plain' | 'kafka-tls' | 'tls';
  readonly config: Config;
}

/** One ingest of every record into an empty cdc_event; events per second from first row to last. */
async function ingestRate(setting: Setting, run: number): Promise<number> {
  const pool = createPool(setting.config.databaseUrl!, 4, log);
  try {
    await pool.query('truncate msr.cdc_event');
    const kafka = { ...setting.config.kafka, groupId: `bench-${setting.name}-${run}` };
    const ingest = new Ingest(pool, { ...kafka, brokers: kafka.brokers! }, log, new Metrics());
    ingest.start();
    let firstRowAt = 0;
    for (;;) {
      const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from msr.cdc_event');
      if (rows[0]!.n > 0 && !firstRowAt) firstRowAt = performance.now();
      if (rows[0]!.n >= EVENTS) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const rate = EVENTS / ((performance.now() - firstRowAt) / 1000);
    await ingest.stop();
    return Math.round(rate);
  } finally {
    await pool.end();
  }
}

async function produce(cluster: KafkaCluster): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench', brokers: cluster.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const data = debeziumRecords(EVENTS, 2_000);
  for (let i = 0; i < data.length; i += 500)
    await producer.send({ topic: TOPIC, messages: data.slice(i, i + 500) });
  await producer.disconnect();
}

async function connectClient(app: App, from: number, to: number): Promise<ReplayClient> {
  const client = await ReplayClient.connect(`ws://127.0.0.1:${app.port}/v1/replay`, {
    webSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
    validate: false,
  });
  await client.open({ from, to, at: from });
  return client;
}

/** Milliseconds from seek to the first keyframe part and to the last. */
async function seek(client: ReplayClient, t: number): Promise<[number, number]> {
  const first = client.waitFor((m) => m.type === 'keyframe', 120_000);
  const done = client.waitFor((m): m is KeyframeMessage => m.type === 'keyframe' && m.last, 120_000);
  const started = performance.now();
  await client.seek(Math.round(t));
  await first;
  const firstMs = performance.now() - started;
  await done;
  return [firstMs, performance.now() - started];
}

async function main() {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-tls-bench-'));
  // As root, PostgreSQL runs as 'postgres', which must reach its data and its certificate.
  await chmod(dir, 0o755);
  const database = await startEmbeddedDatabase(path.join(dir, 'pg'), 0, log);
  let cluster: KafkaCluster | undefined;
  const apps: App[] = [];
  try {
    const caFile = await enableTls(database.url, path.join(dir, 'certs'));
    cluster = await startKafkaCluster(path.join(dir, 'kafka'), { connect: false, secure: true });
    const secure = cluster.secure!;
    const tlsUrl = new URL(database.url);
    tlsUrl.hostname = 'localhost';
    const base = { AUTH_MODE: 'none', DEMO: 'false', PORT: '0', AGGREGATE_REFRESH_SECONDS: '0' };
    const plain: Setting = {
      name: 'plain',
      config: loadConfig({
        ...base,
        DATABASE_URL: database.url,
        KAFKA_BROKERS: cluster.brokers.join(','),
        KAFKA_TOPICS: TOPIC,
      }),
    };
    const secureKafka = {
      KAFKA_BROKERS: secure.brokers.join(','),
      KAFKA_TOPICS: TOPIC,
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: secure.caFile,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: secure.users['scram-sha-512'].username,
      KAFKA_SASL_PASSWORD: secure.users['scram-sha-512'].password,
    };
    const kafkaTls: Setting = {
      name: 'kafka-tls',
      config: loadConfig({ ...base, DATABASE_URL: database.url, ...secureKafka }),
    };
    const tls: Setting = {
      name: 'tls',
      config: loadConfig({
        ...base,
        DATABASE_URL: tlsUrl.toString(),
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: caFile,
        ...secureKafka,
      }),
    };

    const pool = createPool(database.url, 4, log);
    await migrate(pool, log);
    await produce(cluster);
    // Alternating, so that a drift of the shared machine falls on both.
    const ingest: Record<Setting['name'], number[]> = { plain: [], 'kafka-tls': [], tls: [] };
    for (let run = 0; run < 2; run++) {
      for (const setting of [plain, kafkaTls, tls]) {
        ingest[setting.name].push(await ingestRate(setting, run));
        process.stdout.write(`ingest ${setting.name} run ${run}: ${ingest[setting.name].at(-1)} events/s\n`);
      }
    }

    await pool.query('truncate msr.cdc_event');
    await installDemo(pool);
    const seeded = (await seedDemoHistory(pool, log, { city: DEMO_CITY }))!;
    await pool.query(REFRESH_AGGREGATE);
    await pool.query('analyze');
    await pool.end();
    const from = seeded.epoch.getTime();
    const to = from + 24 * 3_600_000;
    const times = Array.from({ length: SEEKS }, (_, i) => from + (((i * 7919) % 1000) / 1000) * (to - from));
    const seeks: Record<'plain' | 'tls', { first: number[]; complete: number[] }> = {
      plain: { first: [], complete: [] },
      tls: { first: [], complete: [] },
    };
    const clients = {} as Record<'plain' | 'tls', ReplayClient>;
    const seekSettings = [
      { name: 'plain' as const, config: plain.config },
      { name: 'tls' as const, config: tls.config },
    ];
    for (const setting of seekSettings) {
      const app = await createApp(withoutKafka(setting.config), { log });
      apps.push(app);
      clients[setting.name] = await connectClient(app, from, to);
    }
    for (const t of times) {
      for (const setting of seekSettings) {
        const [first, complete] = await seek(clients[setting.name], t);
        seeks[setting.name].first.push(first);
        seeks[setting.name].complete.push(complete);
      }
    }
    for (const client of Object.values(clients)) await client.close();

    const ms = (values: number[], p: number) => Math.round(percentile(values, p));
    const mean = (values: number[]) => Math.round(values.reduce((a, b) => a + b, 0) / values.length);
    const result = {
      machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, embedded PostgreSQL 15, Kafka 3.9.2 (one KRaft broker)`,
      ingest: {
        events: EVENTS,
        plainEventsPerSecond: ingest.plain,
        kafkaTlsEventsPerSecond: ingest['kafka-tls'],
        tlsEventsPerSecond: ingest.tls,
        kafkaTlsVsPlain: Math.round((mean(ingest['kafka-tls']) / mean(ingest.plain)) * 100) / 100,
        tlsVsPlain: Math.round((mean(ingest.tls) / mean(ingest.plain)) * 100) / 100,
      },
      seek: {
        events: seeded.events,
        seeks: SEEKS,
        plain: {
          firstP50Ms: ms(seeks.plain.first, 50),
          completeP50Ms: ms(seeks.plain.complete, 50),
          completeP95Ms: ms(seeks.plain.complete, 95),
        },
        tls: {
          firstP50Ms: ms(seeks.tls.first, 50),
          completeP50Ms: ms(seeks.tls.complete, 50),
          completeP95Ms: ms(seeks.tls.complete, 95),
        },
      },
    };
    const md = [
      '# MSR: the cost of TLS',
      '',
      `Machine: ${result.machine}. One run; plain and TLS alternate.`,
      '',
      '| measure | plain | TLS | TLS / plain |',
      '| --- | --- | --- | --- |',
      `| ingest, ${EVENTS} schema'd Debezium events, 3 partitions (events/s, two runs each) | ${ingest.plain.join(', ')} | ${ingest.tls.join(', ')} | ${result.ingest.tlsVsPlain}x |`,
      `| the same, TLS to Kafka only (PostgreSQL plain) | ${ingest.plain.join(', ')} | ${ingest['kafka-tls'].join(', ')} | ${result.ingest.kafkaTlsVsPlain}x |`,
      `| seek to first keyframe part, p50 (${SEEKS} seeks, demo city) | ${result.seek.plain.firstP50Ms} ms | ${result.seek.tls.firstP50Ms} ms | ${(result.seek.tls.firstP50Ms / result.seek.plain.firstP50Ms).toFixed(2)}x |`,
      `| seek to complete keyframe, p50 / p95 | ${result.seek.plain.completeP50Ms} / ${result.seek.plain.completeP95Ms} ms | ${result.seek.tls.completeP50Ms} / ${result.seek.tls.completeP95Ms} ms | ${(result.seek.tls.completeP50Ms / result.seek.plain.completeP50Ms).toFixed(2)}x |`,
      '',
      'Ingest TLS: the SASL_SSL listener with SCRAM-SHA-512 and PostgreSQL with verify-full; seek TLS: the pool with verify-full.',
      '',
    ].join('\n');
    await mkdir(RESULTS, { recursive: true });
    await writeFile(new URL('tls.json', RESULTS), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(new URL('tls.md', RESULTS), md);
    process.stdout.write(`${md}\n`);
  } finally {
    for (const app of apps) await app.stop();
    await cluster?.stop();
    await database.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The seek servers do not ingest: only their database connections differ. */
function withoutKafka(config: Config): Config {
  return { ...config, kafka: { ...config.kafka, brokers: undefined } };
}

await main();
// Something of the run may keep the event loop alive after everything was stopped: name it and
// end, rather than hang after the results.
setTimeout(() => {
  process.stderr.write(`still open after the run: ${process.getActiveResourcesInfo().join(', ')}\n`);
  process.exit(0);
}, 5_000).unref();
