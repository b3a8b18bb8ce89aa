import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '@msr/protocol/messages';
import type { ReplayClient } from '@msr/protocol';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { writeLiveChange } from '../../support/history.js';
import { connect, keyframeDone } from '../../support/replay.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// With the built-in capture into the database, live sessions of the same process play up to what
// the capture has stored, not LIVE_DELAY_MS behind the clock: the delay here is 30 s, and every
// captured change must reach both sessions long before it would allow. The state stays exact, and
// a row another writer stores behind that edge still reaches them, as a late-row correction.

const LIVE_DELAY_MS = 30_000;

describe('the live edge follows the built-in capture', () => {
  const name = `edge${randomBytes(4).toString('hex')}`;
  let source: TestDatabase;
  let db: TestDatabase;
  let app: App;

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema edge;
      create table edge.dot (id int primary key, v int);
      alter table edge.dot replica identity full;
      insert into edge.dot values (1, 0), (2, 0);
      create publication msr for table edge.dot;`);
    db = await createTestDatabase();
    app = await startCaptureApp(db, source, name, { LIVE_DELAY_MS: String(LIVE_DELAY_MS) });
    await until('the initial snapshot and the stream', async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        `select count(*)::int as n from msr.cdc_event where source = $1 and op = 'r'`,
        [name],
      );
      return rows[0]!.n === 2 && app.capture!.status.state === 'streaming';
    });
  });

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
  });

  /** A live session opened at the clock, with each change it is sent and when it came. */
  async function follow(speed: 1 | 'max') {
    const client = await connect(app.port);
    const received: { change: Change; at: number }[] = [];
    client.on((m) => {
      if (m.type === 'frame') for (const change of m.changes) received.push({ change, at: Date.now() });
    });
    const keyframe = keyframeDone(client);
    const { rows } = await db.pool.query<{ ms: number }>(
      'select (extract(epoch from min(event_timestamp)) * 1000)::float8 as ms from msr.cdc_event',
    );
    const now = Date.now();
    await client.open({ from: Math.ceil(rows[0]!.ms), to: now + 3_600_000, at: now, speed });
    await keyframe;
    await client.play();
    return { client, received };
  }

  const sourceRows = async () => {
    const { rows } = await source.pool.query<{ id: number; v: number }>('select id, v from edge.dot');
    return new Map(rows.map((r) => [`edge.dot|${r.id}`, { id: r.id, v: r.v }]));
  };
  const dots = (client: ReplayClient) =>
    new Map([...client.state].filter(([key]) => key.startsWith('edge.dot|')));

  it('sends each captured change within moments of its commit, exactly once, the state exact', async () => {
    const sessions = [await follow(1), await follow('max')];
    for (let i = 0; i < 15; i++) {
      // One transaction: an update and an insert.
      await source.pool.query(
        'with moved as (update edge.dot set v = $1 where id = $2) insert into edge.dot values ($3, $1)',
        [i + 1, 1 + (i % 2), 10 + i],
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    const expected = await sourceRows();
    for (const { client, received } of sessions) {
      await until(
        'every change played',
        async () => {
          return dots(client).size === expected.size;
        },
        15_000,
      );
      await until('the state is the source', async () => {
        const state = dots(client);
        return [...expected].every(([key, row]) => isDeepStrictEqual(state.get(key), row));
      });
      expect(dots(client)).toEqual(expected);
      const captured = received.filter(({ change }) => change.table === 'edge.dot');
      for (let i = 0; i < 15; i++) {
        expect(
          captured.filter(({ change }) => change.op === 'c' && change.id === String(10 + i)),
        ).toHaveLength(1);
      }
      // From commit (the change's time) to arrival: far below the 30 s delay for every change.
      const slowest = Math.max(...captured.map(({ change, at }) => at - change.ts));
      expect(slowest).toBeLessThan(LIVE_DELAY_MS / 3);
      // The 1x session plays at the clock, not 30 s behind it.
      expect(client.t).toBeGreaterThan(Date.now() - LIVE_DELAY_MS / 3);
    }

    // Another writer's row behind the captured edge: the sessions have passed its time already.
    await writeLiveChange(db.pool, [], Date.now() - 2_000, 'other', 'c', { v: 'late' });
    for (const { client } of sessions) {
      await until(
        'the late row corrected',
        async () => {
          return client.state.has('ops.unit|other');
        },
        10_000,
      );
      expect(client.state.get('ops.unit|other')).toEqual({ v: 'late' });
      client.disconnect();
    }
  });
});
