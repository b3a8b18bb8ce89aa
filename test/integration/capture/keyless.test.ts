import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { sqlState } from '../../support/history.js';
import { getJson } from '../../support/http.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// Tables without a primary key (pgbench_history is one): with REPLICA IDENTITY FULL every row
// image is known, so replay gives the source's multiset of rows, identical rows included.

describe('built-in capture: tables without a primary key', () => {
  const name = `kl${randomBytes(3).toString('hex')}`;
  let source: TestDatabase;
  let db: TestDatabase;
  let app: App;

  /** The table's rows, each as JSON text, sorted: a multiset. */
  async function sourceRows(): Promise<string[]> {
    const { rows } = await source.pool.query<{ row: unknown }>(
      `select to_jsonb(h) - 'mtime' || jsonb_build_object('mtime', replace(mtime::text, ' ', 'T')) as row
         from bench.history h`,
    );
    return rows.map((r) => JSON.stringify(r.row)).sort();
  }

  async function replayedRows(t: number): Promise<string[]> {
    const state = await sqlState(db.pool, t, ['bench.history']);
    return [...state]
      .filter(([k]) => k.startsWith(`${name}|`))
      .map(([, v]) => JSON.stringify(v))
      .sort();
  }

  const stored = async () =>
    (await db.pool.query(`select count(*)::int as n from msr.cdc_event where source = $1`, [name])).rows[0].n;

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema bench;
      -- pgbench's history table: no primary key.
      create table bench.history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
      alter table bench.history replica identity full;
      create table bench.log (line text);
      insert into bench.history values (1, 1, 1, 5, '2026-01-01 00:00:00', null), -- calendar-free: column values
                                       (1, 1, 1, 5, '2026-01-01 00:00:00', null), -- calendar-free: column values
                                       (2, 1, 7, -3, '2026-01-01 00:00:01', 'x'); -- calendar-free: column values
      create publication msr for table bench.history, bench.log;`);
    db = await createTestDatabase();
    app = await startCaptureApp(db, source, name);
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
  });

  it('replays the source multiset of rows at every checkpoint, duplicates included', async () => {
    await until('snapshot', async () => (await stored()) === 3);
    expect(await replayedRows(Date.now())).toEqual(await sourceRows());

    let expected = 3;
    const step = async (sql: string, changes: number) => {
      await source.pool.query(sql);
      expected += changes;
      await until('stored', async () => (await stored()) === expected);
      const t = Date.now();
      expect(await replayedRows(t)).toEqual(await sourceRows());
      return t;
    };
    // A third identical row, then one of three identical rows deleted, then one of two updated.
    const t1 = await step(`insert into bench.history values (1, 1, 1, 5, '2026-01-01 00:00:00', null)`, 1); // calendar-free: column values
    const rowsAtT1 = await sourceRows();
    await step(
      `delete from bench.history where ctid = (select min(ctid) from bench.history where tid = 1)`,
      1,
    );
    await step(
      `update bench.history set delta = 6 where ctid = (select max(ctid) from bench.history where tid = 1)`,
      1,
    );
    // Every row at once, a truncate, and new rows after it.
    await step(`update bench.history set bid = 2`, 3);
    await step(
      `truncate bench.history; insert into bench.history select 3, 3, 3, 1, '2026-01-02', null from generate_series(1, 4)`, // calendar-free: column values
      1 + 4,
    );
    // The past is still there to replay.
    expect(await replayedRows(t1)).toEqual(rowsAtT1);
    const live = await db.pool.query(`select count(*)::int as n from msr.keyless_row where source = $1`, [
      name,
    ]);
    expect(live.rows[0].n).toBe(4);
  });

  it('replays inserts of a table without key or full images, and warns that it cannot do more', async () => {
    // PostgreSQL itself refuses updates and deletes of such a table while a publication sends them.
    const before = await stored();
    await source.pool.query(`insert into bench.log values ('a'), ('a'), ('b')`);
    await expect(source.pool.query(`update bench.log set line = 'c'`)).rejects.toThrow(/replica identity/);
    await until('stored', async () => (await stored()) === before + 3);
    const logRows = [...(await sqlState(db.pool, Date.now(), ['bench.log']))]
      .filter(([k]) => k.startsWith(`${name}|`))
      .map(([, v]) => (v as { line: string }).line)
      .sort();
    expect(logRows).toEqual(['a', 'a', 'b']);
    const { body } = await getJson(app.port, '/readyz');
    expect(body.checks.capture.ok).toBe(true);
    expect(body.checks.capture.warnings).toEqual([
      expect.stringContaining('bench.log has no primary key and no REPLICA IDENTITY FULL'),
    ]);
  });

  it('snapshots tables again on POST /api/v1/snapshots, dropping rows the source no longer has', async () => {
    const post = (body: unknown) =>
      fetch(`http://127.0.0.1:${app.port}/api/v1/snapshots`, { method: 'POST', body: JSON.stringify(body) });
    const unknown = await post({ source: name, collections: ['bench.nope'] });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({
      code: 'BAD_MESSAGE',
      message: expect.stringContaining('bench.nope'),
    });
    // Rows deleted while the table was out of the publication: MSR never saw them go.
    await source.pool.query(`
      alter publication msr drop table bench.history;
      delete from bench.history where ctid = (select min(ctid) from bench.history);
      alter publication msr add table bench.history;`);
    expect(await replayedRows(Date.now())).not.toEqual(await sourceRows());
    const before = await stored();
    const response = await post({ source: name, collections: ['bench.history'] });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({
      source: name,
      collections: ['bench.history'],
      via: 'capture',
    });
    const rows = (await source.pool.query(`select count(*)::int as n from bench.history`)).rows[0].n;
    // A truncate, then a read of each row.
    await until('snapshot stored', async () => (await stored()) === before + 1 + rows);
    expect(await replayedRows(Date.now())).toEqual(await sourceRows());
    const live = await db.pool.query(
      `select count(*)::int as n from msr.keyless_row where source = $1 and table_name = 'history'`,
      [name],
    );
    expect(live.rows[0].n).toBe(rows);
    // The stream goes on after it.
    await source.pool.query(`insert into bench.history values (9, 9, 9, 9, null, null)`);
    await until('stream after the snapshot', async () => (await stored()) === before + 2 + rows);
    expect(await replayedRows(Date.now())).toEqual(await sourceRows());
  });
});
