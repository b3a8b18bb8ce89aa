import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../server/db/embedded.js';
import { createLogger } from '../../server/logger.js';
import { until } from '../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { sqlState } from '../support/history.js';
import { getJson } from '../support/http.js';
import { brokers, serverWithIngest, createTopics, readTopic, uniquePrefix } from '../support/kafka.js';

// The whole capture path with real components: a source PostgreSQL (embedded, wal_level=logical),
// the Debezium PostgreSQL connector in a real Kafka Connect worker, a real Kafka broker, and the
// MSR server consuming the topics. After each phase of changes, the replayed state at that time
// must equal the source tables as they were.

const root = new URL('../../', import.meta.url).pathname;
const log = createLogger('warn');

const getJsonReady = async (port: number) => (await getJson(port, '/readyz')).body.checks;

describe('Debezium to Kafka to MSR, end to end', () => {
  const prefix = uniquePrefix('gis');
  const signalTopic = `${prefix}-signals`;
  const connector = `${prefix}-connector`;
  const connectUrl = () => inject('kafkaConnectUrl');
  let sourceDir: string;
  let source: EmbeddedDatabase;
  let sourcePool: pg.Pool;
  let db: TestDatabase;
  let app: App;

  /** Source rows as MSR should replay them: key as MSR builds it, row as jsonb. */
  async function sourceState(): Promise<Map<string, unknown>> {
    const { rows } = await sourcePool.query<{ key: string; row: Record<string, unknown> }>(`
      select 'gis|bookmark|' || id as key, to_jsonb(b) as row from gis.bookmark b
      union all
      select format('gis|geo_entity|{"code":%s,"tenant":%s}', to_json(code), tenant), to_jsonb(g) from gis.geo_entity g
      union all
      select 'gis|note|' || id, to_jsonb(x) from gis.note x`);
    return new Map(rows.map((r) => [`${prefix}|${r.key}`, normalize(r.row)]));
  }

  /** Debezium writes timestamptz as ISO text in UTC with Z, PostgreSQL's to_jsonb with +00:00. */
  const normalize = (row: unknown) => {
    const copy = { ...(row as Record<string, unknown>) };
    if (typeof copy.created_at === 'string') copy.created_at = Date.parse(copy.created_at);
    return copy;
  };

  async function replayed(t: number): Promise<Map<string, unknown>> {
    const state = await sqlState(db.pool, t);
    // gis.history (no primary key) is checked as a multiset on its own.
    return new Map(
      [...state]
        .filter(([k]) => k.startsWith(`${prefix}|`) && !k.startsWith(`${prefix}|gis|history|`))
        .map(([k, v]) => [k, normalize(v)]),
    );
  }

  const stored = async (where = 'true') =>
    (
      await db.pool.query<{ n: number }>(
        `select count(*)::int as n from msr.cdc_event where source = $1 and ${where}`,
        [prefix],
      )
    ).rows[0]!.n;

  beforeAll(async () => {
    sourceDir = await mkdtemp(path.join(tmpdir(), 'msr-source-'));
    source = await startEmbeddedDatabase(sourceDir, 0, log);
    sourcePool = new pg.Pool({ connectionString: source.url, max: 2 });
    // The source stops at the end while a pooled connection may still be closing: not a failure.
    sourcePool.on('error', () => undefined);
    sourcePool.on('connect', (client) => client.on('error', () => undefined));
    await sourcePool.query(`
      create schema gis;
      create table gis.bookmark (
        id int primary key, name text, price numeric(10, 2), amount numeric, day date,
        seen_at timestamp, created_at timestamptz, doc jsonb, tags text[], uid uuid, big bigint);
      create table gis.geo_entity (tenant int, code text, label text, primary key (tenant, code));
      create table gis.note (id int primary key, body text, n int);
      -- Like pgbench_history: no primary key.
      create table gis.history (tid int, delta int, mtime timestamp);
      -- gis.note is left out of 02-prepare-source.sql, so it keeps the default replica identity: an
      -- update that leaves its TOASTed body alone makes Debezium send its placeholder instead.
      insert into gis.bookmark (id, name, price) values (1, 'first', 1.10), (2, 'second', 2.20);`);
    // The preparation users run on their source (role, replica identity, publication, signal table).
    await sourcePool.query(await readFile(`${root}deploy/source/02-prepare-source.sql`, 'utf8'));
    await sourcePool.query(`alter publication msr_gis add table gis.note, gis.history`);
    await sourcePool.query(`alter table gis.history replica identity full`);

    db = await createTestDatabase();
    app = await createApp(
      loadConfig({
        ...serverWithIngest(db.url, prefix, `msr-${prefix}`),
        SIGNAL_TOPIC: signalTopic,
        // The built-in capture reads the same publication beside Debezium, under another name.
        CAPTURE_SOURCE_URL: source.url,
        CAPTURE_SOURCE_NAME: `${prefix}cap`,
        CAPTURE_PUBLICATION: 'msr_gis',
        CAPTURE_SLOT: `${prefix}_capture`,
      }),
      { log, ingest: { topicRefreshMs: 500 }, capture: { retryMs: 500 } },
    );

    // Debezium's Kafka signal channel reads partition 0 of a topic that must exist before it starts.
    await createTopics([{ topic: signalTopic, partitions: 1 }]);
    const { port } = new URL(source.url);
    const response = await fetch(`${connectUrl()}/connectors/${connector}/config`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      // The example connector of compose.yml, pointed at this run's source, topics and broker.
      body: JSON.stringify({
        ...JSON.parse(await readFile(`${root}deploy/debezium/gis-connector.json`, 'utf8')),
        'database.hostname': '127.0.0.1',
        'database.port': port,
        'database.dbname': 'msr',
        'topic.prefix': prefix,
        'slot.name': `${prefix}_slot`,
        'table.include.list': 'gis.bookmark,gis.geo_entity,gis.note,gis.history',
        'heartbeat.interval.ms': '1000',
        'signal.kafka.topic': signalTopic,
        'signal.kafka.bootstrap.servers': brokers().join(','),
        'signal.kafka.groupId': `${prefix}-signals`,
      }),
    });
    expect(response.status, await response.text()).toBeLessThan(300);
  });

  afterAll(async () => {
    await fetch(`${connectUrl()}/connectors/${connector}`, { method: 'DELETE' }).catch(() => undefined);
    await app?.stop();
    await sourcePool?.end();
    await source?.stop();
    await db?.drop();
    if (sourceDir) await rm(sourceDir, { recursive: true, force: true });
  });

  it('replays inserts, updates, deletes, truncates and TOAST placeholders as the source had them', async () => {
    await until('the initial snapshot', async () => (await stored(`op = 'r'`)) === 2);
    const t0 = Date.now();
    expect(await replayed(t0)).toEqual(await sourceState());

    const phase1 = Date.now();
    await sourcePool.query(`
      insert into gis.bookmark values (3, 'third', 12.30, 123456789.000123, '2026-11-24', -- calendar-free: column values
        '2026-11-24 10:30:15.123456', '2026-11-24 10:30:15.5+00', '{"a": [1, 2.50], "big": 12345678901234567890}', -- calendar-free: column values
        array['x', 'y'], '0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11');
      insert into gis.geo_entity values (1, 'a', 'one-a'), (1, 'b', 'one-b'), (2, 'a', 'two-a');
      insert into gis.note select 1, string_agg(md5(i::text), '') , 0 from generate_series(1, 400) i;
      update gis.bookmark set price = 1.15, tags = array['changed'] where id = 1;
      delete from gis.bookmark where id = 2;`);
    await until('phase 1 stored', async () => (await stored()) === 2 + 7);
    const t1 = Date.now();
    expect(await replayed(t1)).toEqual(await sourceState());

    await sourcePool.query(`
      truncate gis.geo_entity;
      insert into gis.geo_entity values (3, 'z', 'three-z');
      update gis.note set n = 1 where id = 1;
      update gis.bookmark set doc = '{"b": null}', created_at = '2026-11-24 10:30:15+00' where id = 3; -- calendar-free: column values
    `);
    await until('phase 2 stored', async () => (await stored()) === 9 + 4);
    const t2 = Date.now();
    const afterPhase2 = await sourceState();
    expect(afterPhase2.get(`${prefix}|gis|note|1`)).toMatchObject({ n: 1 });
    expect(await replayed(t2)).toEqual(afterPhase2);
    // The earlier states are still there to replay.
    expect((await replayed(t1)).size).toBe(6);
    expect((await replayed(t0)).size).toBe(2);

    const { rows } = await db.pool.query(
      `select table_name, op, entity_id, event_timestamp, lsn is not null as has_lsn, kafka_topic
         from msr.cdc_event where source = $1 order by event_timestamp, lsn, kafka_offset`,
      [prefix],
    );
    const ops = rows.map((r) => `${r.table_name}:${r.op}:${r.entity_id}`);
    expect(ops).toContain(`geo_entity:c:{"code":"b","tenant":1}`);
    expect(ops).toContain('geo_entity:t:');
    expect(ops).toContain('bookmark:d:2');
    expect(rows.every((r) => r.has_lsn && r.kafka_topic === `${prefix}.gis.${r.table_name}`)).toBe(true);
    for (const r of rows.filter((x) => x.op !== 'r')) {
      expect(r.event_timestamp.getTime()).toBeGreaterThanOrEqual(phase1 - 1000);
      expect(r.event_timestamp.getTime()).toBeLessThanOrEqual(t2);
    }
    // Debezium really sent its placeholder for the untouched TOAST body, and MSR kept the body.
    const noteRecords = await readTopic(`${prefix}.gis.note`, 2);
    expect(noteRecords[1]!.value).toContain('__debezium_unavailable_value');
    const placeholder = await db.pool.query(
      `select count(*)::int as n from msr.cdc_event where source = $1 and after::text like '%unavailable%'`,
      [prefix],
    );
    expect(placeholder.rows[0].n).toBe(0);
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    // The delete's tombstone was read and skipped.
    expect(metrics).toMatch(new RegExp(`msr_ingest_skipped_total\\{topic="${prefix}.gis.bookmark"\\} [1-9]`));
  });

  it('replays a table without a primary key as its multiset of rows, duplicates included', async () => {
    const before = await stored();
    await sourcePool.query(`
      insert into gis.history values (1, 5, '2026-01-01 00:00:00'), (1, 5, '2026-01-01 00:00:00'), (2, 7, null); -- calendar-free: column values
      delete from gis.history where ctid = (select min(ctid) from gis.history where tid = 1);
      update gis.history set delta = 6 where tid = 2;`);
    await until('history stored', async () => (await stored()) === before + 5);
    const { rows } = await sourcePool.query<{ row: unknown }>(
      `select jsonb_build_object('tid', tid, 'delta', delta, 'mtime', replace(mtime::text, ' ', 'T')) as row
         from gis.history`,
    );
    const replayedRows = [...(await sqlState(db.pool, Date.now(), ['gis.history']))]
      .filter(([k]) => k.startsWith(`${prefix}|`))
      .map(([, v]) => JSON.stringify(v))
      .sort();
    expect(replayedRows).toEqual(rows.map((r) => JSON.stringify(r.row)).sort());
    expect(replayedRows).toHaveLength(2);
  });

  it('keeps every digit of a bigint past 2^53, which Debezium writes as a JSON number', async () => {
    const before = await stored();
    await sourcePool.query(`
      insert into gis.bookmark (id, name, big) values (20, 'big', 9007199254740993);
      update gis.bookmark set big = 9223372036854775807 where id = 20;`);
    await until('the big values stored', async () => (await stored()) === before + 2);
    const { rows } = await db.pool.query(
      `select op, before->>'big' as was, after->>'big' as big from msr.cdc_event
        where source = $1 and table_name = 'bookmark' and entity_id = '20' order by id`,
      [prefix],
    );
    expect(rows).toEqual([
      { op: 'c', was: null, big: '9007199254740993' },
      { op: 'u', was: '9007199254740993', big: '9223372036854775807' },
    ]);
    // Debezium really sent the number as a JSON number: the topic holds every stored change of
    // the table and a tombstone after each delete.
    const { rows: sent } = await db.pool.query<{ n: number }>(
      `select (count(*) + count(*) filter (where op = 'd'))::int as n from msr.cdc_event
        where source = $1 and table_name = 'bookmark'`,
      [prefix],
    );
    const records = await readTopic(`${prefix}.gis.bookmark`, sent[0]!.n);
    expect(records.at(-1)!.value).toContain('"big":9223372036854775807');
  });

  it('the built-in capture, beside Debezium on the same source, stores the same events', async () => {
    const capture = `${prefix}cap`;
    const streamed = (name: string) =>
      db.pool
        .query(
          `select table_name, case when table_name = 'history' then '' else entity_id end as entity_id, op,
                  before, after, event_timestamp, lsn, tx_id
             from msr.cdc_event
            where source = $1 and op <> 'r' and table_name <> 'debezium_signal'
            order by event_timestamp, lsn, kafka_offset, kafka_partition`,
          [name],
        )
        .then((r) => r.rows);
    const debezium = await streamed(prefix);
    await until(
      'the capture has as many changes',
      async () => (await streamed(capture)).length === debezium.length,
    );
    expect(await streamed(capture)).toEqual(debezium);
    // The initial snapshots hold the same rows (each taken at its own time and position).
    const snapshot = (name: string) =>
      db.pool
        .query(
          `select table_name, entity_id, after from msr.cdc_event
            where source = $1 and op = 'r' and table_name <> 'debezium_signal' order by table_name, entity_id`,
          [name],
        )
        .then((r) => r.rows);
    expect(await snapshot(capture)).toEqual(await snapshot(prefix));
    expect((await getJsonReady(app.port)).capture).toMatchObject({ ok: true, state: 'streaming' });
  });

  it('asks Debezium for a blocking snapshot through POST /api/v1/snapshots and the CLI', async () => {
    const before = await stored(`op = 'r'`);
    const bad = await fetch(`http://127.0.0.1:${app.port}/api/v1/snapshots`, {
      method: 'POST',
      body: JSON.stringify({ source: prefix, collections: ['no_schema'] }),
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).code).toBe('BAD_MESSAGE');

    const response = await fetch(`http://127.0.0.1:${app.port}/api/v1/snapshots`, {
      method: 'POST',
      body: JSON.stringify({ source: prefix, collections: ['gis.bookmark'] }),
    });
    expect(response.status).toBe(202);
    const signal = await response.json();
    expect(signal).toMatchObject({
      topic: signalTopic,
      source: prefix,
      collections: ['gis.bookmark'],
      type: 'blocking',
    });
    expect(signal.id).toMatch(/^[0-9a-f-]{36}$/);
    const bookmarks = (await sourcePool.query(`select count(*)::int as n from gis.bookmark`)).rows[0].n;
    await until(
      'the blocking snapshot of gis.bookmark',
      async () => (await stored(`op = 'r'`)) === before + bookmarks,
    );

    const cli = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'server/cli/snapshot.ts', '--source', prefix, 'gis.geo_entity'],
      { cwd: root, env: { ...process.env, KAFKA_BROKERS: brokers().join(','), SIGNAL_TOPIC: signalTopic } },
    );
    expect(JSON.parse(cli.stdout)).toMatchObject({ source: prefix, collections: ['gis.geo_entity'] });
    await until(
      'the blocking snapshot of gis.geo_entity',
      async () => (await stored(`op = 'r' and table_name = 'geo_entity'`)) === 1,
    );
    expect(await replayed(Date.now())).toEqual(await sourceState());

    const misuse = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'server/cli/snapshot.ts', 'gis.x'],
      {
        cwd: root,
        env: { ...process.env, KAFKA_BROKERS: brokers().join(',') },
      },
    ).catch((err: { code: number; stderr: string }) => err);
    expect(misuse).toMatchObject({ code: 2 });
    expect((misuse as { stderr: string }).stderr).toContain('usage: npm run snapshot');
  });
});
