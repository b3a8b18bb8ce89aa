import { spawn } from 'node:child_process';
import { KafkaJSNonRetriableError } from 'kafkajs';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../../server/app.js';
import type { IngestOptions } from '../../../server/ingest/consumer.js';
import { loadConfig } from '../../../server/config.js';
import { createLogger } from '../../../server/logger.js';
import { until } from '../../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  hoursAgo,
  prepareStorageFor,
  generateHistory,
  referenceState,
  sqlState,
  type HistoryEvent,
} from '../../support/history.js';
import { getJson } from '../../support/http.js';
import { startServerProcess } from '../../support/process.js';
import {
  serverWithIngest,
  createTopics,
  debeziumRecord,
  offsets,
  uniquePrefix,
  withProducer,
} from '../../support/kafka.js';

// The ingest consumer against a real Kafka broker and real PostgreSQL, fed Debezium-shaped records
// by a kafkajs producer (the Debezium connector itself runs in test/e2e/debezium.test.ts).

const HOUR = 3_600_000;
const root = new URL('../../../', import.meta.url).pathname;

const countEvents = async (db: TestDatabase, prefix: string) =>
  (
    await db.pool.query<{ n: number }>(`select count(*)::int as n from msr.cdc_event where source = $1`, [
      prefix,
    ])
  ).rows[0]!.n;

function ingestEnv(db: TestDatabase, prefix: string, groupId: string): Record<string, string> {
  return {
    ...serverWithIngest(db.url, prefix, groupId),
    // A killed member holds its partitions this long; the broker's minimum keeps the drill short.
    KAFKA_SESSION_TIMEOUT_MS: '6000',
  };
}

async function startIngest(
  db: TestDatabase,
  prefix: string,
  groupId: string,
  afterDatabaseCommit?: IngestOptions['afterDatabaseCommit'],
): Promise<App> {
  return createApp(loadConfig(ingestEnv(db, prefix, groupId)), {
    log: createLogger(process.env.TEST_LOG ?? 'silent'),
    ingest: { topicRefreshMs: 500, ...(afterDatabaseCommit ? { afterDatabaseCommit } : {}) },
  });
}

/** One partition of incidents produced under a fresh prefix, for a consumer group of its own. */
async function incidentBacklog(name: string, seed: number) {
  const prefix = uniquePrefix(name);
  const topic = `${prefix}.city.incident`;
  await createTopics([{ topic, partitions: 1 }]);
  const events = debeziumHistory(prefix, seed, 400).filter((e) => e.table === 'incident');
  await produce(events, prefix);
  return { prefix, topic, events, groupId: `g-${prefix}` };
}

/** Each record stored once: as many rows as distinct records, and as many as were produced. */
async function expectStoredOnce(db: TestDatabase, prefix: string, records: number): Promise<void> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n, count(distinct (kafka_partition, kafka_offset))::int as records
       from msr.cdc_event where source = $1`,
    [prefix],
  );
  expect(rows[0]).toEqual({ n: records, records });
}

/** A history converted to what Debezium would send: every event has an LSN, as real ones do. */
function debeziumHistory(prefix: string, seed: number, count: number): HistoryEvent[] {
  const start = hoursAgo(30);
  return generateHistory(seed, start, 2 * HOUR, count).map((e, i) => ({
    ...e,
    source: prefix,
    lsn: 5000 + i,
  }));
}

async function produce(events: HistoryEvent[], prefix: string): Promise<void> {
  await withProducer(async (producer) => {
    const records = events.map((e) => debeziumRecord(e, prefix));
    for (const topic of new Set(records.map((r) => r.topic))) {
      // Per topic in order; each entity's key keeps its events on one partition, in order.
      const messages = records.filter((r) => r.topic === topic).map(({ key, value }) => ({ key, value }));
      for (let i = 0; i < messages.length; i += 500) {
        await producer.send({ topic, messages: messages.slice(i, i + 500) });
      }
    }
  });
}

describe('ingest from Kafka', () => {
  let db: TestDatabase;
  let app: App | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, hoursAgo(30), hoursAgo(0));
  });
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });
  afterAll(() => db?.drop());

  it('stores every change once, commits offsets after it, and replays to the fold of the produced events', async () => {
    const prefix = uniquePrefix('fold');
    await createTopics([
      { topic: `${prefix}.city.vehicle`, partitions: 3 },
      { topic: `${prefix}.city.incident`, partitions: 1 },
    ]);
    const events = debeziumHistory(prefix, 17, 1500);
    await produce(events, prefix);
    app = await startIngest(db, prefix, `g-${prefix}`);
    await until('all events stored', async () => (await countEvents(db, prefix)) === events.length);

    const start = events[0]!.ts;
    for (const f of [0, 0.2, 0.5, 0.77, 1]) {
      const t = Math.round(start + f * 2 * HOUR);
      expect(await sqlState(db.pool, t), `state at +${f * 2} h`).toEqual(referenceState(events, t));
    }
    const { rows } = await db.pool.query(
      `select kafka_topic, kafka_partition, count(*)::int as n, count(distinct kafka_offset)::int as offsets,
              min(kafka_offset)::int as lo, max(kafka_offset)::int as hi, bool_and(lsn is not null and tx_id is not null) as lsn
         from msr.cdc_event where source = $1 group by 1, 2 order by 1, 2`,
      [prefix],
    );
    for (const r of rows) {
      expect(r.n).toBe(r.offsets);
      expect([r.lo, r.hi]).toEqual([0, r.n - 1]);
      expect(r.lsn).toBe(true);
    }
    const vehicle = await offsets(`g-${prefix}`, `${prefix}.city.vehicle`);
    await until('offsets committed', async () => {
      const now = await offsets(`g-${prefix}`, `${prefix}.city.vehicle`);
      return JSON.stringify(now.committed) === JSON.stringify(now.high);
    });
    expect(Object.keys(vehicle.high)).toHaveLength(3);

    const ready = await getJson(app.port, '/readyz');
    expect(ready.body.checks.kafka).toMatchObject({ ok: true });
    expect(ready.body.checks.kafka.topics).toEqual([`${prefix}.city.incident`, `${prefix}.city.vehicle`]);
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    const stored = [...metrics.matchAll(/^msr_ingest_events_total\{topic="[^"]+"\} (\d+)$/gm)].map((m) =>
      Number(m[1]),
    );
    expect(stored.reduce((a, b) => a + b, 0)).toBe(events.length);
    expect(metrics).toMatch(
      new RegExp(`msr_ingest_consumer_lag\\{topic="${prefix}.city.vehicle",partition="\\d"\\} 0`),
    );
  });

  it('keeps undecodable records with their bytes in msr.ingest_error and goes on', async () => {
    const prefix = uniquePrefix('poison');
    const topic = `${prefix}.city.vehicle`;
    await createTopics([{ topic, partitions: 1 }]);
    const good = debeziumHistory(prefix, 3, 20).filter((e) => e.table === 'vehicle' && e.op !== 't');
    const first = debeziumRecord(good[0]!, prefix);
    const nul = JSON.parse(first.value);
    nul.after = { id: 'x', note: 'a\u0000b' };
    const poison = [
      { key: '{"id":"p1"}', value: '{not json' },
      { key: '{"id":"p2"}', value: JSON.stringify({ after: {}, source: JSON.parse(first.value).source }) },
      { key: '{"id":"p3"}', value: JSON.stringify({ ...JSON.parse(first.value), op: 'z' }) },
      { key: '{"id":"p4"}', value: JSON.stringify(nul) },
    ];
    await withProducer(async (producer) => {
      await producer.send({ topic, messages: [{ key: first.key, value: first.value }, ...poison] });
      await producer.send({ topic, messages: good.slice(1).map((e) => debeziumRecord(e, prefix)) });
    });
    app = await startIngest(db, prefix, `g-${prefix}`);
    await until('good records stored', async () => (await countEvents(db, prefix)) === good.length);

    const { rows } = await db.pool.query(
      `select kafka_offset::int as offset, reason, convert_from(record_key, 'UTF8') as key, record_value
         from msr.ingest_error where kafka_topic = $1 order by kafka_offset`,
      [topic],
    );
    expect(rows.map((r) => [r.offset, r.reason, r.key])).toEqual([
      [1, 'NOT_JSON', '{"id":"p1"}'],
      [2, 'NOT_A_CHANGE_EVENT', '{"id":"p2"}'],
      [3, 'UNKNOWN_OP', '{"id":"p3"}'],
      [4, 'REJECTED_BY_DATABASE', '{"id":"p4"}'],
    ]);
    expect(rows.map((r) => r.record_value.toString())).toEqual(poison.map((p) => p.value));
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toContain(`msr_ingest_errors_total{topic="${topic}",reason="NOT_JSON"} 1`);
    expect(metrics).toContain(`msr_ingest_errors_total{topic="${topic}",reason="REJECTED_BY_DATABASE"} 1`);
  });

  it('loses nothing and stores nothing twice when killed between the database and the offset commit', async () => {
    const prefix = uniquePrefix('crash');
    const topic = `${prefix}.city.vehicle`;
    await createTopics([{ topic, partitions: 1 }]);
    const events = debeziumHistory(prefix, 5, 800).filter((e) => e.table === 'vehicle');
    await produce(events, prefix);
    const groupId = `g-${prefix}`;

    const worker = spawn(process.execPath, ['--import', 'tsx', 'test/support/ingest-crash-worker.ts'], {
      cwd: root,
      env: { ...process.env, ...ingestEnv(db, prefix, groupId) },
      stdio: 'pipe',
    });
    let output = '';
    worker.stderr.on('data', (d) => (output += d));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
      worker.on('exit', (_code, sig) => resolve(sig)),
    );
    expect(signal, output).toBe('SIGKILL');

    const afterCrash = await countEvents(db, prefix);
    expect(afterCrash).toBeGreaterThan(0);
    expect((await offsets(groupId, topic)).committed).toEqual({ 0: '-1' });

    app = await startIngest(db, prefix, groupId);
    await until('all events stored', async () => (await countEvents(db, prefix)) === events.length);
    await new Promise((r) => setTimeout(r, 1000));
    const { rows } = await db.pool.query(
      `select count(*)::int as n, count(distinct kafka_offset)::int as distinct_offsets from msr.cdc_event where source = $1`,
      [prefix],
    );
    expect(rows[0]).toEqual({ n: events.length, distinct_offsets: events.length });
    await until(
      'offsets committed',
      async () => (await offsets(groupId, topic)).committed[0] === String(events.length),
    );
  });

  it('keeps its partitions through a batch written for longer than the session timeout', async () => {
    const { prefix, topic, events, groupId } = await incidentBacklog('slow', 11);
    let held = false;
    // The first batch takes twice the session timeout (6 s) between its database commit and its
    // offset commit, as a write waiting on a lock or a large snapshot batch may.
    app = await startIngest(db, prefix, groupId, async () => {
      if (held) return;
      held = true;
      await new Promise((r) => setTimeout(r, 12_000));
    });
    await until('all events stored', async () => (await countEvents(db, prefix)) === events.length, 60_000);
    await until(
      'offsets committed',
      async () => (await offsets(groupId, topic)).committed[0] === String(events.length),
    );
    expect(held).toBe(true);
    await expectStoredOnce(db, prefix, events.length);
    // The member kept its partition: nothing was read twice, and it never crashed.
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toContain(`msr_ingest_events_total{topic="${topic}"} ${events.length}\n`);
    const ready = await getJson(app.port, '/readyz');
    expect(ready.body.checks.kafka).toMatchObject({ ok: true });
  });

  it('starts consuming again after a crash kafkajs does not restart from, storing nothing twice', async () => {
    const { prefix, topic, events, groupId } = await incidentBacklog('final', 13);
    let crashed = false;
    app = await startIngest(db, prefix, groupId, () => {
      if (crashed) return;
      crashed = true;
      // What kafkajs raises for a member the group no longer knows: it gives up, restart: false.
      throw new KafkaJSNonRetriableError('drill: the coordinator is not aware of this member');
    });
    await until('all events stored', async () => (await countEvents(db, prefix)) === events.length, 60_000);
    await until(
      'offsets committed',
      async () => (await offsets(groupId, topic)).committed[0] === String(events.length),
      30_000,
    );
    expect(crashed).toBe(true);
    await expectStoredOnce(db, prefix, events.length);
    await until(
      'ready again',
      async () => (await getJson(app!.port, '/readyz')).body.checks.kafka.ok === true,
    );
  });

  it('takes a new topic in the middle of a backlog without reading a stored batch again', async () => {
    const prefix = uniquePrefix('resub');
    const vehicleTopic = `${prefix}.city.vehicle`;
    await createTopics([{ topic: vehicleTopic, partitions: 2 }]);
    const history = debeziumHistory(prefix, 41, 40_000);
    const vehicles = history.filter((e) => e.table === 'vehicle');
    const incidents = history.filter((e) => e.table === 'incident');
    await produce(vehicles, prefix);
    // Small batches: one is being stored (beside the next fetch) whenever the consumer is replaced.
    app = await createApp(
      loadConfig({ ...ingestEnv(db, prefix, `g-${prefix}`), KAFKA_MAX_BATCH_BYTES: '16384' }),
      { log: createLogger(process.env.TEST_LOG ?? 'silent'), ingest: { topicRefreshMs: 200 } },
    );
    await until('part of the backlog stored', async () => (await countEvents(db, prefix)) > 0, 60_000, 20);
    // A second table's topic appears: the ingest subscribes again with a new consumer.
    await createTopics([{ topic: `${prefix}.city.incident`, partitions: 1 }]);
    await produce(incidents, prefix);
    const incidentStored = async () =>
      (
        await db.pool.query<{ n: number }>(
          `select count(*)::int as n from msr.cdc_event where source = $1 and table_name = 'incident'`,
          [prefix],
        )
      ).rows[0]!.n;
    await until('the new topic read', async () => (await incidentStored()) > 0, 60_000, 20);
    // The new consumer took over while the backlog was still being read.
    expect(await countEvents(db, prefix)).toBeLessThan(history.length);
    await until('all stored', async () => (await countEvents(db, prefix)) === history.length, 120_000);
    const { rows } = await db.pool.query(
      `select count(distinct (kafka_topic, kafka_partition, kafka_offset))::int as records
         from msr.cdc_event where source = $1`,
      [prefix],
    );
    expect(rows[0].records).toBe(history.length);
    // Every record was stored by one batch: none was read again after the change of consumer.
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toContain(`msr_ingest_events_total{topic="${vehicleTopic}"} ${vehicles.length}\n`);
  }, 180_000);

  it('loses nothing across a graceful shutdown in the middle of the backlog', async () => {
    const prefix = uniquePrefix('drain');
    const topic = `${prefix}.city.vehicle`;
    await createTopics([{ topic, partitions: 2 }]);
    const events = debeziumHistory(prefix, 31, 40_000).filter((e) => e.table === 'vehicle');
    await produce(events, prefix);
    const groupId = `g-${prefix}`;
    // Small batches, so the stop lands between and inside many of them.
    const server = startServerProcess({
      ...ingestEnv(db, prefix, groupId),
      KAFKA_MAX_BATCH_BYTES: '16384',
      LOG_LEVEL: 'info',
    });
    let partway: number;
    try {
      await server.port();
      partway = await until(
        'part of the backlog stored',
        async () => {
          const n = await countEvents(db, prefix);
          return n > 0 && n;
        },
        60_000,
        20,
      );
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    } finally {
      // A test that fails before the stop must not leave the server running.
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    }
    const atStop = await countEvents(db, prefix);
    expect(partway).toBeLessThan(events.length);
    // The batch in flight was finished and committed: each partition's committed offset is just
    // past the last stored record, so nothing has to be read again.
    const stored = await db.pool.query<{ partition: number; next: string }>(
      `select kafka_partition as partition, (max(kafka_offset) + 1)::text as next
         from msr.cdc_event where source = $1 group by 1`,
      [prefix],
    );
    const { committed } = await offsets(groupId, topic);
    for (const row of stored.rows) expect(committed[row.partition]).toBe(row.next);
    expect(server.output()).toContain('stopping');

    app = await startIngest(db, prefix, groupId);
    await until('all events stored', async () => (await countEvents(db, prefix)) === events.length);
    const { rows } = await db.pool.query(
      `select count(*)::int as n, count(distinct (kafka_partition, kafka_offset))::int as records
         from msr.cdc_event where source = $1`,
      [prefix],
    );
    expect(rows[0]).toEqual({ n: events.length, records: events.length });
    expect(atStop).toBeLessThanOrEqual(events.length);
  });

  it('waits while the database is down and stores everything once it is back', async () => {
    const prefix = uniquePrefix('outage');
    const topic = `${prefix}.city.incident`;
    await createTopics([{ topic, partitions: 1 }]);
    const events = debeziumHistory(prefix, 9, 300).filter((e) => e.table === 'incident');
    app = await startIngest(db, prefix, `g-${prefix}`);
    await until('ingest consuming', async () => (await getJson(app!.port, '/readyz')).body.checks.kafka.ok);

    const dbName = new URL(db.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    try {
      await admin.query(`alter database ${dbName} allow_connections false`);
      await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
        [dbName],
      );
      await produce(events, prefix);
      await until('ingest reports the outage', async () => {
        const kafka = (await getJson(app!.port, '/readyz')).body.checks.kafka;
        return !kafka.ok && /database write failed/.test(kafka.error);
      });
      const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
      expect(Number(/^msr_ingest_write_retries_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    } finally {
      await admin.query(`alter database ${dbName} allow_connections true`);
      await admin.end();
    }
    await until(
      'all events stored after the outage',
      async () => (await countEvents(db, prefix)) === events.length,
    );
    const { rows } = await db.pool.query(
      `select count(distinct kafka_offset)::int as n from msr.cdc_event where source = $1`,
      [prefix],
    );
    expect(rows[0].n).toBe(events.length);
    await until('ingest ready again', async () => (await getJson(app!.port, '/readyz')).body.checks.kafka.ok);
  });
});
