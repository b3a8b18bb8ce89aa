import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { sqlState } from '../../support/history.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// The initial snapshot meets the stream with no gap and no duplicate while the source is being
// written to: rows committed before the slot's snapshot come as `r`, later ones as changes.

describe('built-in capture: initial snapshot under concurrent writes', () => {
  const name = `snap${randomBytes(3).toString('hex')}`;
  let source: TestDatabase;
  let db: TestDatabase;
  let app: App | undefined;

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema w;
      create table w.counter (id int primary key, n int not null);
      alter table w.counter replica identity full;
      insert into w.counter select i, 0 from generate_series(1, 2000) i;
      create publication msr for table w.counter;`);
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
  });

  it('has every row once, as `r` or as its insert, and the source state at the end', async () => {
    let writing = true;
    let next = 2001;
    // New rows and increments of old ones, one small transaction after another, all along.
    const writer = (async () => {
      while (writing) {
        await source.pool.query(
          `with added as (insert into w.counter values ($1, 0), ($2, 0))
           update w.counter set n = n + 1 where id = $3`,
          [next, next + 1, 1 + (next % 2000)],
        );
        next += 2;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    app = await startCaptureApp(db, source, name);
    await until('streaming', async () => app!.capture?.status.state === 'streaming');
    await new Promise((r) => setTimeout(r, 1000));
    writing = false;
    await writer;
    const rows = (await source.pool.query(`select count(*)::int as n from w.counter`)).rows[0].n;
    await until('caught up', async () => {
      const { rows: r } = await db.pool.query(
        `select count(distinct entity_id)::int as n from msr.cdc_event where source = $1`,
        [name],
      );
      return r[0].n === rows;
    });
    await new Promise((r) => setTimeout(r, 500));
    const { rows: counts } = await db.pool.query(
      `select count(*) filter (where op = 'r')::int as snapshot,
              count(*) filter (where op = 'c')::int as inserts,
              count(distinct entity_id) filter (where op in ('r', 'c'))::int as entities
         from msr.cdc_event where source = $1`,
      [name],
    );
    expect(counts[0].snapshot).toBeGreaterThanOrEqual(2000);
    expect(counts[0].inserts).toBeGreaterThan(0);
    expect(counts[0].snapshot + counts[0].inserts).toBe(rows);
    expect(counts[0].entities).toBe(rows);
    const { rows: sourceRows } = await source.pool.query<{ id: number; n: number }>(
      `select id, n from w.counter`,
    );
    const expected = new Map(sourceRows.map((r) => [`${name}|w|counter|${r.id}`, { id: r.id, n: r.n }]));
    expect(await sqlState(db.pool, Date.now())).toEqual(expected);
  });
});
