import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createLogger } from '../../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { sqlState } from '../../support/history.js';
import { brokers, uniquePrefix, withAdmin } from '../../support/kafka.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// CAPTURE_TO=kafka against a real source and the run's real broker: one source captured twice at
// once, straight into msr.cdc_event (source `direct`) and through Kafka in Debezium's format, then
// MSR's own ingest (source `viaKafka`). Every stored row must be the same apart from the source
// name, including digits a double would lose, documents, arrays, a keyless table with duplicate
// rows and a truncate; and a change sent twice (a failure between the produce and the slot's
// confirmation) is stored once.

const log = createLogger('silent');
const root = new URL('../../../', import.meta.url).pathname;

describe('built-in capture into Kafka (CAPTURE_TO=kafka)', () => {
  const direct = uniquePrefix('capd');
  const viaKafka = uniquePrefix('capk');
  let source: TestDatabase;
  let db: TestDatabase;
  const apps: App[] = [];
  let failOnce = true;
  let failedBatches = 0;

  const stored = async (name: string) =>
    (
      await db.pool.query<{ n: number }>('select count(*)::int as n from msr.cdc_event where source = $1', [
        name,
      ])
    ).rows[0]!.n;

  /** A source's rows in replay order, as they differ from the other source's: not at all. */
  const rowsOf = async (name: string) =>
    (
      await db.pool.query(
        `select event_timestamp, table_schema, table_name, entity_id, op, before, after, lsn, tx_id,
                kafka_partition, kafka_offset, replace(kafka_topic, source, '') as topic
           from msr.cdc_event where source = $1
          order by event_timestamp, lsn, kafka_offset, kafka_partition`,
        [name],
      )
    ).rows;

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema gis;
      create table gis.bookmark (
        id bigint primary key, name text, price numeric(10, 2), amount numeric, day date,
        seen_at timestamp, created_at timestamptz, doc jsonb, raw json, tags text[], counts int[],
        uid uuid, blob bytea, big bigint, ok boolean, ratio float8, span interval);
      create table gis.geo_entity (tenant int, code text, label text, primary key (tenant, code));
      create table gis.visit (who text, n int);
      alter table gis.bookmark replica identity full;
      alter table gis.geo_entity replica identity full;
      alter table gis.visit replica identity full;
      insert into gis.bookmark (id, name, price) values (1, 'first', 1.10), (9007199254740993, 'huge key', 2.20);
      insert into gis.visit values ('ann', 1), ('ann', 1);
      create publication msr for table gis.bookmark, gis.geo_entity, gis.visit;`);
    db = await createTestDatabase();
    apps.push(await startCaptureApp(db, source, direct, {}, { log }));
    apps.push(
      await startCaptureApp(
        db,
        source,
        viaKafka,
        {
          CAPTURE_TO: 'kafka',
          KAFKA_BROKERS: brokers().join(','),
          KAFKA_GROUP_ID: `g-${viaKafka}`,
          KAFKA_TOPIC_PATTERN: `^${viaKafka}\\.`,
        },
        {
          log,
          ingest: { topicRefreshMs: 500 },
          capture: {
            // The first streamed batch reaches Kafka, then the capture fails before confirming it.
            afterStore: () => {
              if (!failOnce) return;
              failOnce = false;
              failedBatches++;
              throw new Error('test: fail between the produce and the confirmation');
            },
          },
        },
      ),
    );
  });

  afterAll(async () => {
    for (const app of apps) await app.stop();
    await db?.drop();
    await source?.drop();
  });

  it('stores through Kafka exactly the rows the direct capture stores, each once', async () => {
    let snapshots: number[] = [];
    await until(
      'both snapshots',
      async () => {
        snapshots = [await stored(direct), await stored(viaKafka)];
        return snapshots.every((n) => n === 4);
      },
      30_000,
    ).catch(async (err: Error) => {
      const states = await Promise.all(apps.map((app) => app.capture?.status));
      throw new Error(`${err.message}: stored ${snapshots.join(' and ')}; ${JSON.stringify(states)}`);
    });
    await source.pool.query(`
      insert into gis.bookmark values (3, 'third', 12.30, 123456789.000123456789, '2026-11-24', -- calendar-free: column values
        '2026-11-24 10:30:15.123456', '2026-11-24 10:30:15.5+00', '{"a": [1, 2.50], "big": 12345678901234567890}', -- calendar-free: column values
        '{"kept": "as is",  "n": 1.50}', array['x', 'y', null], array[[1, 2], [3, 4]],
        '0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11', '\\x00ff10', 9223372036854775807, true, 0.1,
        '1 day 02:03:04.5');
      insert into gis.geo_entity values (1, 'a', 'one-a'), (1, 'b', 'one-b'), (2, 'a', 'two-a');
      -- About 2 MB in one transaction: more than a broker takes in one record batch (1 MiB).
      insert into gis.geo_entity select 9, 'bulk' || i, repeat(md5(i::text), 32) from generate_series(1, 2000) i;
      update gis.bookmark set price = 1.15, tags = array['changed'] where id = 1;
      delete from gis.bookmark where id = 9007199254740993;
      insert into gis.visit values ('bob', 2);
      update gis.visit set n = 5 where who = 'bob';
      delete from gis.visit where ctid = (select ctid from gis.visit where who = 'ann' limit 1);`);
    await source.pool.query(`
      truncate gis.geo_entity;
      insert into gis.geo_entity values (3, 'z', 'three-z');
      update gis.bookmark set doc = '{"b": null}', amount = -0.000000000000000000001 where id = 3;`);
    const expected = 4 + 9 + 2000 + 3;
    let counts: number[] = [];
    await until(
      'every change stored both ways',
      async () => {
        counts = [await stored(direct), await stored(viaKafka)];
        return counts.every((n) => n === expected);
      },
      45_000,
    ).catch(async (err: Error) => {
      const rows = (await rowsOf(viaKafka)).map((r) =>
        [
          r.op,
          r.table_name,
          r.entity_id,
          r.kafka_partition,
          r.kafka_offset,
          r.event_timestamp.toISOString(),
        ].join(' '),
      );
      throw new Error(`${err.message}: stored ${counts.join(' and ')} of ${expected}\n${rows.join('\n')}`);
    });
    // The failed batch was sent to Kafka before the failure, and again after it.
    expect(failedBatches).toBe(1);
    const produced = await withAdmin(async (admin) => {
      let n = 0;
      for (const table of ['bookmark', 'geo_entity', 'visit']) {
        for (const p of await admin.fetchTopicOffsets(`${viaKafka}.gis.${table}`))
          n += Number(p.high) - Number(p.low);
      }
      return n;
    });
    expect(produced).toBeGreaterThan(expected);

    // Each capture took its own initial snapshot (its own slot, moment and position); what
    // streamed after both existed has the same commit times, positions and coordinates.
    const [a, b] = [await rowsOf(direct), await rowsOf(viaKafka)];
    const snapshot = (rows: typeof a) =>
      rows
        .filter((r) => r.op === 'r')
        // A keyless row's entity is named after its first event's coordinates: its snapshot's here.
        .map((r) => JSON.stringify([r.table_name, r.table_name === 'visit' ? 'row' : r.entity_id, r.after]))
        .sort();
    expect(snapshot(b)).toEqual(snapshot(a));
    const streamed = (rows: typeof a) => {
      const snapshotRows = new Set(rows.filter((r) => r.op === 'r').map((r) => r.entity_id));
      return rows
        .filter((r) => r.op !== 'r')
        .map((r) => ({ ...r, entity_id: snapshotRows.has(r.entity_id) ? 'a snapshot row' : r.entity_id }));
    };
    expect(streamed(b)).toEqual(streamed(a));
    expect(a.filter((r) => r.op !== 'r')).toHaveLength(2012);
    // The digits a double would lose are kept: the key 2^53 + 1, the largest bigint, a long numeric.
    expect(a.map((r) => r.entity_id)).toContain('9007199254740993');
    const third = await db.pool.query<{ big: string; amount: string; doc: string }>(
      `select after->>'big' as big, after->>'amount' as amount, after->'doc'->>'big' as doc
         from msr.cdc_event where source = $1 and table_name = 'bookmark' and entity_id = '3' and op = 'c'`,
      [viaKafka],
    );
    expect(third.rows[0]).toEqual({
      big: '9223372036854775807',
      amount: '123456789.000123456789',
      doc: '12345678901234567890',
    });

    // Replayed, the two sources hold the same state, keyless duplicates included.
    const t = Date.now();
    const state = await sqlState(db.pool, t);
    const of = (name: string, keyless: boolean) =>
      [...state]
        .filter(([k]) => k.startsWith(`${name}|`) && k.startsWith(`${name}|gis|visit|`) === keyless)
        .map(([k, v]) => [keyless ? 'visit' : k.slice(name.length), JSON.stringify(v)])
        .sort((x, y) => (`${x[0]}${x[1]}` < `${y[0]}${y[1]}` ? -1 : 1));
    expect(of(viaKafka, false)).toEqual(of(direct, false));
    expect(of(viaKafka, true)).toEqual(of(direct, true));
    expect(of(viaKafka, true).map(([, v]) => JSON.parse(v!))).toEqual([
      { who: 'ann', n: 1 },
      { who: 'bob', n: 5 },
    ]);
  });

  /** `npm run snapshot` as the operator runs it, for one of the two captured sources. */
  const snapshotCommand = (name: string, env: Record<string, string>, ...tables: string[]) =>
    promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'server/cli/snapshot.ts', '--source', name, ...tables],
      {
        cwd: root,
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          AUTH_MODE: 'none',
          LOG_LEVEL: 'silent',
          CAPTURE_SOURCE_URL: source.url,
          CAPTURE_SOURCE_NAME: name,
          ...env,
        },
      },
    ).then(
      ({ stdout }) => ({ code: 0, out: JSON.parse(stdout) as Record<string, unknown>, err: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, out: undefined, err: e.stderr }),
    );

  it('snapshots tables again from npm run snapshot, both into the database and through Kafka', async () => {
    const kafkaEnv = { CAPTURE_TO: 'kafka', KAFKA_BROKERS: brokers().join(',') };
    const [beforeDirect, beforeKafka] = [await stored(direct), await stored(viaKafka)];
    const started = await db.pool.query<{ now: Date }>('select now()');
    const viaDb = await snapshotCommand(direct, {}, 'gis.geo_entity', 'gis.bookmark');
    expect(viaDb).toMatchObject({ code: 0, out: { source: direct, via: 'capture', rows: 3 } });
    // Stored when the command returns: a truncate and an `r` per row, per table.
    expect(await stored(direct)).toBe(beforeDirect + 2 + 3);
    const viaTopic = await snapshotCommand(viaKafka, kafkaEnv, 'gis.geo_entity', 'gis.bookmark');
    expect(viaTopic).toMatchObject({ code: 0, out: { source: viaKafka, via: 'capture', rows: 3 } });
    await until(
      'the Kafka snapshot stored by the ingest',
      async () => (await stored(viaKafka)) === beforeKafka + 5,
    );
    const { rows } = await db.pool.query<{ source: string; op: string; n: number }>(
      `select source, op, count(*)::int as n from msr.cdc_event
        where source = any($1) and event_timestamp >= $2 and op in ('r', 't')
        group by 1, 2 order by 1, 2`,
      [[direct, viaKafka], started.rows[0]!.now],
    );
    expect(rows).toEqual(
      [direct, viaKafka].sort().flatMap((name) => [
        { source: name, op: 'r', n: 3 },
        { source: name, op: 't', n: 2 },
      ]),
    );
    const refused = await snapshotCommand(direct, {}, 'gis.nothing');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/not in publication msr: gis\.nothing/);
  });

  it('keeps a change Kafka refuses as too large in msr.ingest_error, with its bytes, and streams on', async () => {
    // About 2 MB in one row: over the broker's message.max.bytes (1 MiB) however it is batched.
    await source.pool.query(
      `insert into gis.bookmark (id, name) select 50, string_agg(md5(i::text), '') from generate_series(1, 64000) i`,
    );
    await source.pool.query(`insert into gis.bookmark (id, name) values (51, 'after the big one')`);
    const entities = (name: string) =>
      db.pool
        .query<{ id: string }>(
          `select entity_id as id from msr.cdc_event
            where source = $1 and table_name = 'bookmark' and entity_id in ('50', '51') order by 1`,
          [name],
        )
        .then((r) => r.rows.map((row) => row.id));
    const keptRows = async () =>
      (
        await db.pool.query<{ reason: string; detail: string; value: Buffer }>(
          `select reason, detail, record_value as value from msr.ingest_error where kafka_topic = $1`,
          [`${viaKafka}.gis.bookmark`],
        )
      ).rows;
    // Three things happen on their own clocks: the direct capture stores both rows, the ingest
    // stores row 51 from Kafka, and the capture keeps row 50 once its batch's sends are done.
    let kept: Awaited<ReturnType<typeof keptRows>> = [];
    await until('row 51 stored both ways and row 50 kept', async () => {
      kept = await keptRows();
      return (
        kept.length > 0 &&
        (await entities(viaKafka)).includes('51') &&
        (await entities(direct)).includes('51')
      );
    });
    expect(await entities(direct)).toEqual(['50', '51']);
    expect(await entities(viaKafka)).toEqual(['51']);
    expect(kept).toHaveLength(1);
    expect(kept[0]!.reason).toBe('REJECTED_BY_KAFKA');
    expect(kept[0]!.detail).toMatch(/bytes: over the broker's message.max.bytes/);
    // The whole Debezium-format record (its bigint key as io.debezium.data.Json text) and the 2 MB name.
    const record = JSON.parse(kept[0]!.value.toString()) as {
      payload: { after: { id: string; name: string } };
    };
    expect(record.payload.after.id).toBe('50');
    expect(record.payload.after.name).toHaveLength(64000 * 32);
    // Named in /readyz once the batch is stored, and still streaming.
    const status = await until('the refusal in the capture status', async () => {
      const now = apps[1]!.capture!.status;
      return now.warnings.some((w) => w.includes('REJECTED_BY_KAFKA')) ? now : undefined;
    });
    expect(status.state).toBe('streaming');
  });
});
