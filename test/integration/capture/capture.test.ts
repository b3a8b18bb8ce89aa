import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createLogger } from '../../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { sqlState } from '../../support/history.js';
import { getJson } from '../../support/http.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// The built-in capture against a real source database (logical replication, pgoutput): the
// initial snapshot, then inserts, updates, deletes, truncates and unchanged TOAST values, every
// type the Debezium end-to-end test covers and more; after each phase the replayed state equals
// the source's tables.

const log = createLogger('warn');

describe('built-in capture from a source PostgreSQL', () => {
  const name = `cap${randomBytes(4).toString('hex')}`;
  let source: TestDatabase;
  let db: TestDatabase;
  let app: App;

  /** The source's rows as MSR should replay them (Debezium's forms: bytea base64, interval in µs). */
  async function sourceState(): Promise<Map<string, unknown>> {
    const { rows } = await source.pool.query<{ key: string; row: Record<string, unknown> }>(`
      select 'gis|bookmark|' || id as key,
             to_jsonb(b) || jsonb_build_object('blob', encode(blob, 'base64'),
                                               'span', (extract(epoch from span) * 1000000)::bigint) as row
        from gis.bookmark b
      union all
      select format('gis|geo_entity|{"code":%s,"tenant":%s}', to_json(code), tenant), to_jsonb(g) from gis.geo_entity g
      union all
      select 'gis|note|' || id, to_jsonb(x) from gis.note x`);
    return new Map(rows.map((r) => [`${name}|${r.key}`, normalize(r.row)]));
  }

  /** timestamptz: MSR stores it as Debezium does (UTC, Z), to_jsonb with +00:00. */
  const normalize = (row: unknown) => {
    const copy = { ...(row as Record<string, unknown>) };
    if (typeof copy.created_at === 'string') copy.created_at = Date.parse(copy.created_at);
    return copy;
  };

  async function replayed(t: number): Promise<Map<string, unknown>> {
    const state = await sqlState(db.pool, t);
    return new Map([...state].filter(([k]) => k.startsWith(`${name}|`)).map(([k, v]) => [k, normalize(v)]));
  }

  const stored = async (where = 'true') =>
    (
      await db.pool.query<{ n: number }>(
        `select count(*)::int as n from msr.cdc_event where source = $1 and ${where}`,
        [name],
      )
    ).rows[0]!.n;

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema gis;
      create type gis.mood as enum ('calm', 'busy');
      create table gis.bookmark (
        id int primary key, name text, price numeric(10, 2), amount numeric, day date,
        seen_at timestamp, created_at timestamptz, doc jsonb, raw json, tags text[], counts int[],
        uid uuid, blob bytea, mood gis.mood, big bigint, ok boolean, ratio float8, span interval);
      create table gis.geo_entity (tenant int, code text, label text, primary key (tenant, code));
      create table gis.note (id int primary key, body text, n int);
      alter table gis.bookmark replica identity full;
      alter table gis.geo_entity replica identity full;
      insert into gis.bookmark (id, name, price) values (1, 'first', 1.10), (2, 'second', 2.20);
      create publication msr for table gis.bookmark, gis.geo_entity, gis.note;`);
    db = await createTestDatabase();
    app = await startCaptureApp(db, source, name, { CAPTURE_HEARTBEAT_SECONDS: '1' }, { log });
  });

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
  });

  it('stores the initial snapshot, then every change, and replays the source as it was', async () => {
    await until('the initial snapshot', async () => (await stored(`op = 'r'`)) === 2);
    const t0 = Date.now();
    expect(await replayed(t0)).toEqual(await sourceState());

    const phase1 = Date.now();
    await source.pool.query(`
      insert into gis.bookmark values (3, 'third', 12.30, 123456789.000123, '2026-11-24', -- calendar-free: column values
        '2026-11-24 10:30:15.123456', '2026-11-24 10:30:15.5+00', '{"a": [1, 2.50], "big": 12345678901234567890}', -- calendar-free: column values
        '{"kept": "as is",  "n": 1.50}', array['x', 'y', null], array[[1, 2], [3, 4]],
        '0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11', '\\x00ff10', 'busy', 9007199254740993, true, 0.1,
        '1 day 02:03:04.5');
      insert into gis.geo_entity values (1, 'a', 'one-a'), (1, 'b', 'one-b'), (2, 'a', 'two-a');
      insert into gis.note select 1, string_agg(md5(i::text), '') , 0 from generate_series(1, 400) i;
      update gis.bookmark set price = 1.15, tags = array['changed'] where id = 1;
      delete from gis.bookmark where id = 2;`);
    await until('phase 1 stored', async () => (await stored()) === 2 + 7);
    const t1 = Date.now();
    expect(await replayed(t1)).toEqual(await sourceState());

    await source.pool.query(`
      truncate gis.geo_entity;
      insert into gis.geo_entity values (3, 'z', 'three-z');
      update gis.note set n = 1 where id = 1;
      update gis.bookmark set doc = '{"b": null}' where id = 3;`);
    await until('phase 2 stored', async () => (await stored()) === 9 + 4);
    const t2 = Date.now();
    const afterPhase2 = await sourceState();
    // gis.note keeps the default replica identity: its TOASTed body was not sent, and MSR kept it.
    expect(afterPhase2.get(`${name}|gis|note|1`)).toMatchObject({ n: 1 });
    expect(await replayed(t2)).toEqual(afterPhase2);
    expect((await replayed(t1)).size).toBe(6);
    expect((await replayed(t0)).size).toBe(2);

    const { rows } = await db.pool.query(
      `select table_name, op, entity_id, event_timestamp, lsn, tx_id, kafka_topic, before
         from msr.cdc_event where source = $1 order by event_timestamp, lsn, kafka_offset, id`,
      [name],
    );
    const ops = rows.map((r) => `${r.table_name}:${r.op}:${r.entity_id}`);
    expect(ops).toContain(`geo_entity:c:{"code":"b","tenant":1}`);
    expect(ops).toContain('geo_entity:t:');
    expect(ops).toContain('bookmark:d:2');
    expect(rows.every((r) => r.lsn !== null && r.kafka_topic === `${name}.gis.${r.table_name}`)).toBe(true);
    for (const r of rows.filter((x) => x.op !== 'r')) {
      // The source's commit time, and its transaction id.
      expect(r.event_timestamp.getTime()).toBeGreaterThanOrEqual(phase1 - 1000);
      expect(r.event_timestamp.getTime()).toBeLessThanOrEqual(t2);
      expect(Number(r.tx_id)).toBeGreaterThan(0);
    }
    // REPLICA IDENTITY FULL gives the before image of an update.
    const update = rows.find((r) => r.op === 'u' && r.table_name === 'bookmark' && r.entity_id === '1');
    expect(update.before).toMatchObject({ id: 1, price: 1.1, tags: null });
    const placeholder = await db.pool.query(
      `select count(*)::int as n from msr.cdc_event where source = $1 and after::text like '%unavailable%'`,
      [name],
    );
    expect(placeholder.rows[0].n).toBe(0);

    const ready = await until('capture ready with slot figures', async () => {
      const r = await getJson(app.port, '/readyz');
      return r.body.checks.capture?.retainedWalBytes !== undefined ? r : undefined;
    });
    expect(ready.status).toBe(200);
    expect(ready.body.checks.capture).toMatchObject({ ok: true, state: 'streaming' });
    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toMatch(/msr_capture_events_total 13\b/);
    expect(metrics).toMatch(/msr_capture_streaming 1\b/);
  });

  it('keeps a change the database refuses in msr.ingest_error with its reason, and goes on', async () => {
    const before = await stored();
    // Valid json, but jsonb (cdc_event's after) cannot hold a NUL character.
    await source.pool.query(`insert into gis.bookmark (id, raw) values (10, '{"bad": "\\u0000"}')`);
    await source.pool.query(`insert into gis.bookmark (id, name) values (11, 'after it')`);
    await until('the next change stored', async () => (await stored()) === before + 1);
    const { rows } = await db.pool.query(
      `select reason, convert_from(record_value, 'UTF8') as value from msr.ingest_error where kafka_topic = $1`,
      [`${name}.gis.bookmark`],
    );
    expect(rows).toEqual([{ reason: 'REJECTED_BY_DATABASE', value: expect.stringContaining('"id":10') }]);
    expect((await replayed(Date.now())).get(`${name}|gis|bookmark|11`)).toMatchObject({ name: 'after it' });
  });
});
