import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { startEmbeddedDatabase } from '../../server/db/embedded.js';
import { seedDemoHistory, installDemo } from '../../server/demo/seed.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { until } from '../support/wait.js';
import { getJson } from '../support/http.js';
import { startMsr } from '../../scripts/services/msr.js';

const log = createLogger('silent');

describe('the server on an existing database', () => {
  let db: TestDatabase;
  let app: App;
  beforeAll(async () => {
    db = await createTestDatabase();
    app = await startMsr(db.url, { DB_POOL_SIZE: '2', AGGREGATE_REFRESH_SECONDS: '1' }, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('serves /healthz and /readyz', async () => {
    expect(await getJson(app.port, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    const ready = await until('ready', async () => {
      const r = await getJson(app.port, '/readyz');
      return r.status === 200 && r.body.checks.snapshot.lastRefresh ? r : undefined;
    });
    // Maintenance ran once at start (bootstrap) and built the snapshot.
    expect(ready.body.checks).toEqual({
      database: { ok: true },
      snapshot: { ok: true, lastRefresh: expect.any(String) },
      aggregate: expect.objectContaining({ ok: true }),
    });
    expect(Date.now() - Date.parse(ready.body.checks.snapshot.lastRefresh)).toBeLessThan(60_000);
  });

  it('reports an empty availability, with the configured limits', async () => {
    expect(await getJson(app.port, '/api/v1/availability')).toEqual({
      status: 200,
      body: {
        earliest: null,
        latest: null,
        maxPlaybackRangeDays: 7,
        earliestValidTimestamp: null,
        activeSessions: 0,
        maxActiveSessions: 5,
      },
    });
  });

  it('reports the stored range once events exist', async () => {
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       values (now() - interval '30 days', 's', 'a', 'b', '1', 'c', '{}'), (now() - interval '2 hours', 's', 'a', 'b', '1', 'u', '{}')`,
    );
    const { body } = await getJson(app.port, '/api/v1/availability');
    const now = Date.now();
    // The oldest event is older than the 7-day window, so the window's start is the earliest time.
    expect(Math.abs(body.earliest - (now - 7 * 86_400_000))).toBeLessThan(60_000);
    expect(Math.abs(body.latest - (now - 2 * 3_600_000))).toBeLessThan(60_000);
    // The periodic refresh (every second here) materializes the new events' buckets by itself:
    // one row per bucket of the entity, the event of 30 days ago and the one of 2 hours ago. (A
    // refresh that ran while the insert committed reports a watermark past the events before it
    // has them: the rows are waited for, not the watermark alone.)
    const aggregate = await until('aggregate refreshed past the new events', async () => {
      const { checks } = (await getJson(app.port, '/readyz')).body;
      const { rows } = await db.pool.query(`select count(*)::int as n from msr.entity_last_states`);
      const past = checks.aggregate.watermark && Date.parse(checks.aggregate.watermark) > now - 2 * 3_600_000;
      return past && rows[0].n === 2 ? checks.aggregate : undefined;
    });
    expect(aggregate.ok).toBe(true);
  });

  it('answers unknown routes with a 404 and a code', async () => {
    expect(await getJson(app.port, '/nope')).toEqual({
      status: 404,
      body: { code: 'NOT_FOUND', message: 'no such route' },
    });
  });

  it('writes its settings into msr.configuration', async () => {
    const { rows } = await db.pool.query(
      `select key, value from msr.configuration where key like 'MAX_%' order by key`,
    );
    expect(rows).toEqual([
      { key: 'MAX_ACTIVE_SESSIONS', value: '5' },
      { key: 'MAX_PLAYBACK_RANGE', value: '7' },
    ]);
  });
});

describe('the demo history', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await installDemo(db.pool);
  });
  afterAll(() => db?.drop());

  it('seeds an hour of vehicles and incidents once, with consistent before and after images', async () => {
    const now = new Date();
    const seeded = await seedDemoHistory(db.pool, log, { now, historyMs: 3_600_000 });
    expect(seeded!.events).toBeGreaterThan(2000 * 25);
    expect(await seedDemoHistory(db.pool, log, { now })).toBeNull();

    const { rows } = await db.pool.query(
      `select table_name, op, count(*)::int as n from msr.cdc_event group by 1, 2 order by 1, 2`,
    );
    const byOp = Object.fromEntries(rows.map((r) => [`${r.table_name}.${r.op}`, r.n]));
    expect(byOp['vehicle.r']).toBe(2000);
    expect(byOp['vehicle.u']).toBeGreaterThan(40_000);
    expect(byOp['incident.c']).toBeGreaterThan(10);
    const total = rows.reduce((a, r) => a + r.n, 0);
    expect(total).toBe(seeded!.events);

    // Each update's before image is the previous event's after image of the same vehicle.
    const mismatches = await db.pool.query(`
      select count(*)::int as n from (
        select before, lag(after) over (partition by entity_id order by event_timestamp) as previous, op
          from msr.cdc_event where table_name = 'vehicle') x
       where op = 'u' and before is distinct from previous`);
    expect(mismatches.rows[0].n).toBe(0);
    const range = await db.pool.query(
      `select min(event_timestamp) as lo, max(event_timestamp) as hi from msr.cdc_event`,
    );
    expect(range.rows[0].hi.getTime()).toBeLessThanOrEqual(now.getTime());
    expect(range.rows[0].lo.getTime()).toBeGreaterThanOrEqual(now.getTime() - 3_600_000);
  });
});

describe('the embedded default', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-app-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('creates its own PostgreSQL, reuses it on the next start, and stops it', async () => {
    const config = loadConfig({ MSR_DATA_DIR: dir, PORT: '0', DEMO: 'false' });
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const first = await createApp(config, { log: capture });
    expect(first.schema.applied.length).toBeGreaterThan(0);
    const url = first.databaseUrl;
    // The superuser's password is random, kept beside the cluster for this user only, never logged.
    const password = decodeURIComponent(new URL(url).password);
    expect(password).not.toBe('msr');
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect((await readFile(path.join(dir, 'pg-password'), 'utf8')).trim()).toBe(password);
    expect((await stat(path.join(dir, 'pg-password'))).mode & 0o777).toBe(0o600);
    expect(lines.join('\n')).toContain('psql');
    expect(lines.join('\n')).not.toContain(password);
    await first.stop();
    // Stopped: nothing listens on the database port any more.
    await expect(fetch(`http://127.0.0.1:${first.port}/healthz`)).rejects.toThrow();
    const second = await createApp(config, { log });
    expect(second.schema.applied).toEqual([]);
    expect((await getJson(second.port, '/readyz')).status).toBe(200);
    await second.stop();
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: url });
    await expect(client.connect()).rejects.toThrow();
  });
});

describe('/readyz while the database goes away and comes back', () => {
  it('is 503 naming the database, then 200 again', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'msr-ready-'));
    let database = await startEmbeddedDatabase(dir, 0, log);
    const port = database.port;
    const app = await startMsr(
      database.url,
      { DB_POOL_SIZE: '2' },
      {
        log,
      },
    );
    try {
      expect((await getJson(app.port, '/readyz')).status).toBe(200);
      // Let the bootstrap maintenance finish first: a first build the outage breaks counts as failed.
      await app.maintenance?.run('manual');
      await database.stop();
      const down = await getJson(app.port, '/readyz');
      expect(down.status).toBe(503);
      expect(down.body.ready).toBe(false);
      expect(down.body.checks.database.ok).toBe(false);
      expect(down.body.checks.database.error).toEqual(expect.any(String));
      expect((await getJson(app.port, '/healthz')).status).toBe(200);
      database = await startEmbeddedDatabase(dir, port, log);
      expect((await getJson(app.port, '/readyz')).status).toBe(200);
    } finally {
      await app.stop();
      await database.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the demo world in the running server', () => {
  it('answers /healthz at once, is ready once seeded, and keeps appending live events', async () => {
    const db = await createTestDatabase();
    const app = await startMsr(
      db.url,
      { DEMO: 'true', DB_POOL_SIZE: '4' },
      {
        log,
        demoHistoryMs: 600_000,
      },
    );
    try {
      expect((await getJson(app.port, '/healthz')).status).toBe(200);
      let ready = await getJson(app.port, '/readyz');
      const deadline = Date.now() + 30_000;
      while (ready.status !== 200 && Date.now() < deadline) {
        // Seeding, then connecting until the built-in capture streams the live demo.
        expect(['seeding', 'connecting']).toContain(ready.body.checks.demo.error);
        await new Promise((r) => setTimeout(r, 100));
        ready = await getJson(app.port, '/readyz');
      }
      expect(ready.body.checks).toMatchObject({
        database: { ok: true },
        demo: { ok: true },
        snapshot: { ok: true },
      });
      const first = (await getJson(app.port, '/api/v1/availability')).body;
      expect(first.latest - first.earliest).toBeGreaterThan(590_000);
      // Vehicles report every 40 to 130 s, so 2,000 of them bring ~25 events a second.
      const count = async () =>
        (await db.pool.query(`select count(*)::int as n from msr.cdc_event`)).rows[0].n;
      const before = await count();
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await count()).toBeGreaterThan(before);
      const later = (await getJson(app.port, '/api/v1/availability')).body;
      expect(later.latest).toBeGreaterThan(first.latest);
    } finally {
      await app.stop();
      await db.drop();
    }
  });
});

describe('GET /api/v1/state', () => {
  let db: TestDatabase;
  let app: App;
  beforeAll(async () => {
    db = await createTestDatabase();
    app = await startMsr(db.url, { DB_POOL_SIZE: '2' }, { log });
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after) values
         (now() - interval '3 hours', 'demo', 'city', 'vehicle', '1', 'c', '{"v":1}'),
         (now() - interval '2 hours', 'demo', 'city', 'vehicle', '1', 'u', '{"v":2}'),
         (now() - interval '2 hours', 'demo', 'city', 'incident', 'A', 'c', '{"i":1}'),
         (now() - interval '1 hours', 'demo', 'city', 'incident', 'A', 'd', null)`,
    );
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('returns the keyframe at t, filtered by tables', async () => {
    const t = Date.now() - 90 * 60_000;
    const all = await getJson(app.port, `/api/v1/state?t=${t}`);
    expect(all.status).toBe(200);
    expect(all.body.t).toBe(t);
    expect(all.body.entities).toEqual(
      expect.arrayContaining([
        { table: 'city.vehicle', id: '1', state: { v: 2 } },
        { table: 'city.incident', id: 'A', state: { i: 1 } },
      ]),
    );
    expect(all.body.entities).toHaveLength(2);
    const vehicles = await getJson(app.port, `/api/v1/state?t=${t}&tables=city.vehicle`);
    expect(vehicles.body.entities).toEqual([{ table: 'city.vehicle', id: '1', state: { v: 2 } }]);
    const later = await getJson(app.port, `/api/v1/state?t=${Date.now() - 60_000}`);
    expect(later.body.entities).toEqual([{ table: 'city.vehicle', id: '1', state: { v: 2 } }]);
  });

  it('answers bad input with a code', async () => {
    expect(await getJson(app.port, '/api/v1/state')).toMatchObject({
      status: 400,
      body: { code: 'BAD_MESSAGE' },
    });
    expect(await getJson(app.port, '/api/v1/state?t=soon')).toMatchObject({
      status: 400,
      body: { code: 'BAD_MESSAGE' },
    });
    expect(await getJson(app.port, `/api/v1/state?t=${Date.now()}&tables=vehicle`)).toMatchObject({
      status: 400,
      body: { code: 'BAD_MESSAGE' },
    });
    expect(await getJson(app.port, `/api/v1/state?t=${Date.now() - 30 * 86_400_000}`)).toMatchObject({
      status: 400,
      body: { code: 'OUT_OF_RANGE' },
    });
    expect(await getJson(app.port, `/api/v1/state?t=${Date.now() + 3_600_000}`)).toMatchObject({
      status: 400,
      body: { code: 'OUT_OF_RANGE' },
    });
  });
});

describe('GET /api/v1/state under load', () => {
  let db: TestDatabase;
  let app: App;
  const ENTITIES = 6_000;
  beforeAll(async () => {
    db = await createTestDatabase();
    app = await startMsr(db.url, { DB_POOL_SIZE: '3', MAX_STATE_REQUESTS: '2' }, { log });
    // About 12 MB of JSON: streamed in parts, never one document in memory.
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       select now() - interval '1 hour', 'demo', 'city', 'vehicle', i::text, 'c',
              jsonb_build_object('id', i, 'pad', repeat('x', 2000))
         from generate_series(1, $1::int) i`,
      [ENTITIES],
    );
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });
  const url = () => `http://127.0.0.1:${app.port}/api/v1/state?t=${Date.now() - 60_000}`;

  it('streams a large keyframe whole, and answers past MAX_STATE_REQUESTS with 429 BUSY', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const response = await fetch(url());
        const body = await response.json();
        return { status: response.status, body };
      }),
    );
    const ok = answers.filter((a) => a.status === 200);
    const busy = answers.filter((a) => a.status === 429);
    expect(ok.length).toBeGreaterThanOrEqual(2);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    for (const a of busy) expect(a.body.code).toBe('BUSY');
    for (const a of ok) {
      expect(a.body.entities).toHaveLength(ENTITIES);
      expect(a.body.entities[0]).toMatchObject({ table: 'city.vehicle', state: { pad: 'x'.repeat(2000) } });
    }
  });

  it('frees its slot and its cursor when a client goes away mid-stream', async () => {
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const response = await fetch(url(), { signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read(); // the first piece, then gone
      controller.abort();
    }
    // Both slots are free again, and the pool has its connections back.
    await until(
      'slots free',
      async () => {
        const answers = await Promise.all([fetch(url()), fetch(url())]);
        const statuses = answers.map((a) => a.status);
        await Promise.all(answers.map((a) => a.arrayBuffer()));
        return statuses.every((s) => s === 200);
      },
      20_000,
    );
  });
});

describe('REST sessions', () => {
  let db: TestDatabase;
  let app: App;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       values (now() - interval '3 hours', 'demo', 'city', 'vehicle', '1', 'c', '{"v":1}')`,
    );
    app = await startMsr(
      db.url,
      { DB_POOL_SIZE: '2', MAX_ACTIVE_SESSIONS: '1' },
      {
        log,
      },
    );
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  const send = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${app.port}${path}`, {
      method,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };

  it('creates, lists, shows and deletes a session, holding a slot meanwhile', async () => {
    const from = Date.now() - 2 * 3_600_000;
    const created = await send('POST', '/api/v1/sessions', {
      from,
      to: from + 3_600_000,
      tables: ['city.vehicle'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      from,
      to: from + 3_600_000,
      position: from,
      playing: false,
      tables: ['city.vehicle'],
    });
    const id = created.body.session;
    expect((await send('GET', '/api/v1/sessions')).body).toMatchObject({
      active: 1,
      sessions: [{ session: id }],
    });
    expect((await send('GET', `/api/v1/sessions/${id}`)).body).toMatchObject({ session: id, sockets: 0 });
    // The only slot is taken.
    expect(await send('POST', '/api/v1/sessions', { from, to: from + 1000 })).toMatchObject({
      status: 429,
      body: { code: 'SESSION_LIMIT' },
    });
    expect((await send('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
    expect((await send('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
    expect((await send('DELETE', `/api/v1/sessions/${id}`)).body).toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
    expect((await send('GET', '/api/v1/sessions')).body.active).toBe(0);
  });

  it('rejects bad bodies with a code', async () => {
    expect(await send('POST', '/api/v1/sessions', '{nope')).toMatchObject({
      status: 400,
      body: { code: 'BAD_MESSAGE' },
    });
    expect(await send('POST', '/api/v1/sessions', { from: 'yesterday' })).toMatchObject({
      status: 400,
      body: { code: 'BAD_MESSAGE' },
    });
    expect(await send('POST', '/api/v1/sessions', { from: Date.now(), to: Date.now() - 1000 })).toMatchObject(
      {
        status: 400,
        body: { code: 'BAD_RANGE' },
      },
    );
  });
});
