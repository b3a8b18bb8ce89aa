import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBPROTOCOLS } from '@msr/protocol/wire';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { sqlState } from '../../support/history.js';
import { connect, keyframeDone } from '../../support/replay.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// Names JavaScript treats specially are plain data to PostgreSQL: a column "__proto__", a text
// key '__proto__'. Set on a plain object, "__proto__" replaces the prototype and the member is
// lost; zod's records drop it and msgpackr renames it. Captured through the snapshot and the
// stream, stored, and replayed to the typed client in every subprotocol, it must stay data.

describe('built-in capture and replay of a column and an id named __proto__', () => {
  const name = `odd${randomBytes(3).toString('hex')}`;
  let source: TestDatabase;
  let db: TestDatabase;
  let app: App;

  const sourceRows = async () => {
    const { rows } = await source.pool.query<{ key: string; row: Record<string, unknown> }>(
      `select 'odd.item|' || id as key, to_jsonb(i) as row from odd.item i
       union all
       select format('odd.pair|{"__proto__":%s,"k":%s}', "__proto__", to_json(k)), to_jsonb(p) from odd.pair p`,
    );
    return new Map(rows.map((r) => [r.key, r.row]));
  };

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema odd;
      create table odd.item (id text primary key, "__proto__" jsonb, "constructor" int);
      create table odd.pair ("__proto__" int, k text, v text, primary key ("__proto__", k));
      alter table odd.item replica identity full;
      insert into odd.item values ('__proto__', '{"x": 1}', 1), ('plain', '2', 2);
      insert into odd.pair values (1, 'a', 'one-a'), (2, 'a', 'two-a');
      create publication msr for table odd.item, odd.pair;`);
    db = await createTestDatabase();
    app = await startCaptureApp(db, source, name);
  });

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
  });

  it('stores them from the snapshot and the stream, and every subprotocol replays them', async () => {
    const count = async () =>
      (await db.pool.query(`select count(*)::int as n from msr.cdc_event where source = $1`, [name])).rows[0]
        .n as number;
    await until('the snapshot', async () => (await count()) === 4);
    await source.pool.query(`
      insert into odd.item values ('new', '{"__proto__": {"deep": true}}', 3);
      update odd.item set "__proto__" = '{"x": 2}' where id = '__proto__';
      update odd.pair set v = 'changed' where "__proto__" = 2;`);
    await until('the stream', async () => (await count()) === 7);

    const expected = await sourceRows();
    expect(expected.get('odd.item|__proto__')).toEqual(
      JSON.parse('{"id":"__proto__","__proto__":{"x":2},"constructor":1}'),
    );
    const at = Date.now();
    const stored = new Map(
      [...(await sqlState(db.pool, at))].map(([k, v]) => [k.replace(`${name}|odd|`, 'odd.'), v]),
    );
    expect(stored).toEqual(expected);

    const { rows: bounds } = await db.pool.query<{ from: string }>(
      `select (extract(epoch from min(event_timestamp)) * 1000)::bigint::text as from from msr.cdc_event where source = $1`,
      [name],
    );
    for (const subprotocol of SUBPROTOCOLS) {
      const client = await connect(app.port, { subprotocol });
      try {
        const keyframe = keyframeDone(client);
        await client.open({ from: Number(bounds[0]!.from), to: at, at, tables: ['odd.item', 'odd.pair'] });
        await keyframe;
        const replayed = new Map([...client.state].map(([key, state]) => [key, JSON.stringify(state)]));
        expect(replayed, subprotocol).toEqual(
          new Map([...expected].map(([key, row]) => [key, JSON.stringify(row)])),
        );
        expect(Object.getPrototypeOf(client.state.get('odd.item|__proto__')), subprotocol).toBe(
          Object.prototype,
        );
      } finally {
        await client.close();
        client.disconnect();
      }
    }
  });
});
