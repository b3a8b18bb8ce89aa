import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { getJson } from '../../support/http.js';
import { startServerProcess } from '../../support/process.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// Exactly-once effect of the built-in capture: positions are confirmed to the source only after
// the database commit, so whatever happens in between (a failure, a killed process) the source
// sends those changes again and storing them again changes nothing.

const ROWS = 50_000;

async function prepareSource(source: TestDatabase): Promise<void> {
  await source.pool.query(`
    create schema load;
    create table load.item (id bigint primary key, n int not null, note text);
    alter table load.item replica identity full;
    create publication msr for table load.item;`);
}

/** Inserts ROWS rows in transactions of 500, then updates every tenth row once. */
async function load(source: TestDatabase): Promise<void> {
  for (let from = 1; from <= ROWS; from += 500) {
    await source.pool.query(
      `insert into load.item select i, 0, md5(i::text) from generate_series($1::bigint, $2::bigint) i`,
      [from, from + 499],
    );
  }
  await source.pool.query(`update load.item set n = 1 where id % 10 = 0`);
}

async function expectExactlyOnce(db: TestDatabase, source: TestDatabase, name: string): Promise<void> {
  const expected = ROWS + ROWS / 10;
  await until(
    'every change stored',
    async () =>
      (await db.pool.query(`select count(*)::int as n from msr.cdc_event where source = $1`, [name])).rows[0]
        .n >= expected,
    120_000,
  );
  const { rows } = await db.pool.query(
    `select count(*)::int as stored,
            count(distinct (kafka_topic, kafka_partition, kafka_offset))::int as coordinates,
            count(distinct (entity_id, op))::int as changes,
            count(*) filter (where op = 'c')::int as inserts
       from msr.cdc_event where source = $1`,
    [name],
  );
  expect(rows[0]).toEqual({ stored: expected, coordinates: expected, changes: expected, inserts: ROWS });
  const sum = await source.pool.query(`select sum(n)::int as n from load.item`);
  const replayed = await db.pool.query(
    `select sum(((last_event).after ->> 'n')::int)::int as n, count(*)::int as entities
       from msr.entity_states_at(now(), null) where source = $1`,
    [name],
  );
  expect(replayed.rows[0]).toEqual({ n: sum.rows[0].n, entities: ROWS });
}

/**
 * A fresh source with the load table and a fresh MSR database for the describe block it is called
 * in (each block its own, so their slots and events never meet); read them inside tests.
 */
function loadSourceAndTarget(): { source: TestDatabase; db: TestDatabase } {
  const databases = {} as { source: TestDatabase; db: TestDatabase };
  beforeAll(async () => {
    databases.source = await createSourceDatabase();
    await prepareSource(databases.source);
    databases.db = await createTestDatabase();
  });
  afterAll(async () => {
    await databases.db?.drop();
    await databases.source?.drop();
  });
  return databases;
}

describe('built-in capture, exactly once', () => {
  const fixture = loadSourceAndTarget();

  it('stores nothing twice when it fails between the database commit and the confirmation', async () => {
    const name = `once${randomBytes(3).toString('hex')}`;
    let stores = 0;
    let failures = 0;
    let app: App | undefined;
    try {
      app = await startCaptureApp(
        fixture.db,
        fixture.source,
        name,
        { CAPTURE_SLOT: `slot_${name}` },
        {
          capture: {
            retryMs: 100,
            batchRows: 2_000,
            // Every fifth batch: committed, then the process "dies" before confirming it.
            afterStore: () => {
              if (++stores % 5 === 0) {
                failures++;
                throw new Error('killed between commit and confirmation');
              }
            },
          },
        },
      );
      await until('streaming', async () => app!.capture?.status.state === 'streaming');
      await load(fixture.source);
      await expectExactlyOnce(fixture.db, fixture.source, name);
      expect(failures).toBeGreaterThan(3);
    } finally {
      await app?.stop();
    }
  });
});

describe('built-in capture, active and passive processes', () => {
  const fixture = loadSourceAndTarget();

  it('one process streams, the other takes over within the takeover time when it is killed mid-load', async () => {
    const name = `ha${randomBytes(3).toString('hex')}`;
    const env = {
      DATABASE_URL: fixture.db.url,
      AUTH_MODE: 'none',
      PORT: '0',
      LOG_LEVEL: 'info',
      CLEANUP_SERVICE_ENABLED: 'false',
      CAPTURE_SOURCE_URL: fixture.source.url,
      CAPTURE_SOURCE_NAME: name,
      CAPTURE_TAKEOVER_SECONDS: '10',
    };
    const capture = async (port: number) => (await getJson(port, '/readyz')).body.checks.capture;
    const first = startServerProcess(env);
    const second = startServerProcess(env);
    try {
      const [a, b] = [await first.port(), await second.port()];
      // Whichever took the slot streams; the other stands by, and both are ready.
      await until('one streams, one stands by', async () => {
        const states = [(await capture(a)).state, (await capture(b)).state].sort();
        return states[0] === 'standby' && states[1] === 'streaming';
      });
      const holderIsFirst = (await capture(a)).state === 'streaming';
      const [holder, standby] = holderIsFirst ? [first, second] : [second, first];
      const standbyPort = holderIsFirst ? b : a;
      expect((await getJson(standbyPort, '/readyz')).status).toBe(200);

      const loading = load(fixture.source);
      await until(
        'a part of the load stored',
        async () =>
          (
            await fixture.db.pool.query(`select count(*)::int as n from msr.cdc_event where source = $1`, [
              name,
            ])
          ).rows[0].n > 10_000,
        60_000,
      );
      holder.child.kill('SIGKILL');
      const killedAt = Date.now();
      await until(
        'the standby streams',
        async () => (await capture(standbyPort)).state === 'streaming',
        30_000,
      );
      const takeoverMs = Date.now() - killedAt;
      console.log(`capture takeover after SIGKILL of the holder: ${takeoverMs} ms`);
      expect(takeoverMs).toBeLessThan(10_000);
      await loading;
      await expectExactlyOnce(fixture.db, fixture.source, name);
      void standby;
    } catch (err) {
      console.log(`first:\n${first.output()}\nsecond:\n${second.output()}`);
      throw err;
    } finally {
      first.child.kill('SIGKILL');
      second.child.kill('SIGKILL');
      await Promise.all([first.exited, second.exited]);
    }
  }, 180_000);
});
