import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { describeConnectionFailure } from '../../server/connection-failure.js';
import { createPool } from '../../server/db/pool.js';
import { createLogger } from '../../server/logger.js';
import { backup } from '../../server/recovery/backup.js';
import { restore } from '../../server/recovery/restore.js';
import { makeAuthority } from '../../scripts/services/certificates.js';
import { serveTls, stopServingTls } from '../../scripts/services/postgres-tls.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  generateHistory,
  hoursAgo,
  insertHistory,
  prepareStorageFor,
  referenceState,
  sqlState,
} from '../support/history.js';
import { getJson } from '../support/http.js';
import { createSourceDatabase } from '../support/source.js';
import { until } from '../support/wait.js';

// MSR on a PostgreSQL that speaks TLS: the run's server of this dialect gets `ssl = on` with a
// certificate for `localhost` only, signed by a CA made for this file, and a role that pg_hba.conf
// lets in over TLS only (so a connection of that role that works is a TLS connection). Other test
// files keep connecting without TLS meanwhile; the settings are put back at the end.

const HOUR = 3_600_000;
const ROLE = 'msr_tls_only';
const PASSWORD = 'tls-only-password';
const log = createLogger('silent');

describe('PostgreSQL over TLS', () => {
  let dir: string;
  let admin: pg.Client;
  let hbaFile: string;
  let hbaBefore: string | undefined;
  let caFile: string;
  let otherCaFile: string;
  let db: TestDatabase;
  let app: App | undefined;
  const restored: string[] = [];

  /** The test database's URL as the TLS-only role, at `host`. */
  const tlsUrl = (host: string, database?: string) => {
    const url = new URL(db.url);
    url.username = ROLE;
    url.password = PASSWORD;
    url.hostname = host;
    if (database) url.pathname = `/${database}`;
    return url.toString();
  };
  const env = (url: string, settings: Record<string, string>) => ({
    DATABASE_URL: url,
    AUTH_MODE: 'none',
    DEMO: 'false',
    PORT: '0',
    AGGREGATE_REFRESH_SECONDS: '0',
    CLEANUP_SERVICE_ENABLED: 'false',
    ...settings,
  });

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
    await admin.connect();
    hbaFile = (await admin.query<{ hba_file: string }>('show hba_file')).rows[0]!.hba_file;
    hbaBefore = await readFile(hbaFile, 'utf8');
    dir = await mkdtemp(path.join(tmpdir(), 'msr-pg-tls-'));
    const ca = await makeAuthority(dir, 'pg-test-ca');
    caFile = ca.certFile;
    otherCaFile = (await makeAuthority(dir, 'other-ca')).certFile;
    await admin.query(`create role ${ROLE} superuser login password '${PASSWORD}'`);
    await writeFile(hbaFile, `hostnossl all ${ROLE} all reject\n${hbaBefore}`);
    await serveTls(admin, ca, dir);

    db = await createTestDatabase();
    await prepareStorageFor(db.pool, hoursAgo(6), hoursAgo(0));
  });

  afterAll(async () => {
    await app?.stop();
    for (const name of restored) await admin.query(`drop database if exists ${name} with (force)`);
    await db?.drop();
    if (hbaBefore !== undefined) await writeFile(hbaFile, hbaBefore);
    await stopServingTls(admin);
    await admin.query(`drop role if exists ${ROLE}`);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves with verify-full, every connection of its pool encrypted', async () => {
    const events = generateHistory(43, hoursAgo(5), 2 * HOUR, 400).map((e) => ({ ...e, source: 'test' }));
    await insertHistory(db.pool, events);
    app = await createApp(
      loadConfig(
        env(tlsUrl('localhost'), { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: caFile }),
      ),
      { log },
    );
    expect((await getJson(app.port, '/readyz')).body.checks.database).toEqual({ ok: true });
    const t = events.at(-1)!.ts;
    const state = await getJson(app.port, `/api/v1/state?t=${t}`);
    expect(state.status).toBe(200);
    const { rows } = await admin.query<{ ssl: boolean; n: number }>(
      `select s.ssl, count(*)::int as n from pg_stat_activity a join pg_stat_ssl s using (pid)
        where a.usename = $1 group by 1`,
      [ROLE],
    );
    expect(rows).toEqual([{ ssl: true, n: expect.any(Number) }]);
    await app.stop();
    app = undefined;
    expect(await sqlState(db.pool, t)).toEqual(referenceState(events, t));
  });

  it('refuses a certificate for another host name with verify-full, and accepts it with verify-ca', async () => {
    const settings = (mode: string) => ({ DATABASE_SSL_MODE: mode, DATABASE_SSL_CA_FILE: caFile });
    const refused = await createApp(loadConfig(env(tlsUrl('127.0.0.1'), settings('verify-full'))), {
      log,
    }).then(
      (started) => started.stop().then(() => undefined),
      (err: unknown) => err,
    );
    expect(describeConnectionFailure(refused)).toMatch(/^certificate is for another host name \(/);
    app = await createApp(loadConfig(env(tlsUrl('127.0.0.1'), settings('verify-ca'))), { log });
    expect((await getJson(app.port, '/readyz')).body.checks.database).toEqual({ ok: true });
    await app.stop();
    app = undefined;
  });

  it('refuses a server its CA did not sign, and the role is refused without TLS', async () => {
    const untrusted = await createApp(
      loadConfig(
        env(tlsUrl('localhost'), { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: otherCaFile }),
      ),
      { log },
    ).then(
      (started) => started.stop().then(() => undefined),
      (err: unknown) => err,
    );
    expect(describeConnectionFailure(untrusted)).toMatch(/^certificate not trusted \(/);
    const plain = await createApp(loadConfig(env(tlsUrl('localhost'), { DATABASE_SSL_MODE: 'disable' })), {
      log,
    }).then(
      (started) => started.stop().then(() => undefined),
      (err: unknown) => err as Error,
    );
    expect(plain?.message).toMatch(/no encryption/);
  });

  it('backs up and restores through TLS (pg_dump and pg_restore with libpq TLS settings)', async () => {
    const config = loadConfig(
      env(tlsUrl('localhost'), { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: caFile }),
    );
    const backupDir = path.join(dir, 'backup');
    const pool = createPool(config.databaseUrl!, 2, log);
    const metadata = await backup(pool, config.databaseUrl!, config, backupDir).finally(() => pool.end());
    const { rows } = await db.pool.query<{ n: number }>('select count(*)::int as n from msr.cdc_event');
    expect(metadata.events).toBe(rows[0]!.n);

    const target = `${new URL(db.url).pathname.slice(1)}_restored`;
    restored.push(target);
    const targetConfig = loadConfig(
      env(tlsUrl('localhost', target), { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: caFile }),
    );
    const result = await restore(targetConfig.databaseUrl!, targetConfig, backupDir, 'cold', log);
    expect(result.restoredEvents).toBe(metadata.events);
    const copy = new pg.Pool({
      connectionString: inject('pgAdminUrl').replace(/\/postgres$/, `/${target}`),
      max: 2,
    });
    try {
      const { rows: span } = await db.pool.query<{ lo: Date; hi: Date }>(
        'select min(event_timestamp) as lo, max(event_timestamp) as hi from msr.cdc_event',
      );
      for (const f of [0.1, 0.5, 1]) {
        const t = span[0]!.lo.getTime() + f * (span[0]!.hi.getTime() - span[0]!.lo.getTime());
        expect(await sqlState(copy, t), `state at ${f}`).toEqual(await sqlState(db.pool, t));
      }
    } finally {
      await copy.end();
    }
  });

  it('captures a source over TLS: its queries and its replication connection, with libpq settings in its URL', async () => {
    const source = await createSourceDatabase();
    try {
      await source.pool.query(`
        create table public.reading (id int primary key, v text);
        alter table public.reading replica identity full;
        insert into public.reading values (1, 'before');
        create publication msr for table public.reading;`);
      const sourceUrl = new URL(tlsUrl('localhost', new URL(source.url).pathname.slice(1)));
      sourceUrl.searchParams.set('sslmode', 'verify-full');
      sourceUrl.searchParams.set('sslrootcert', caFile);
      /** MSR over verify-full TLS, capturing the source of `sourceUrl` as it is now. */
      const startCapturing = () =>
        createApp(
          loadConfig({
            ...env(tlsUrl('localhost'), { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: caFile }),
            CAPTURE_SOURCE_URL: sourceUrl.toString(),
            CAPTURE_SOURCE_NAME: 'tlssource',
          }),
          { log, capture: { retryMs: 200 } },
        );
      app = await startCapturing();
      const stored = (n: number) =>
        until(
          `${n} events stored`,
          async () => {
            const { rows } = await db.pool.query<{ n: number }>(
              `select count(*)::int as n from msr.cdc_event where source = 'tlssource'`,
            );
            return rows[0]!.n === n;
          },
          30_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}: ${JSON.stringify(app?.capture?.status)}`);
        });
      await stored(1); // the initial snapshot, over TLS
      await source.pool.query(`update public.reading set v = 'after' where id = 1`);
      await stored(2); // the change, streamed over TLS
      // The walsender streaming the slot serves an encrypted connection of the TLS-only role.
      const { rows } = await admin.query<{ ssl: boolean }>(
        `select s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid)
          where r.usename = $1 and r.application_name = 'msr-capture'`,
        [ROLE],
      );
      expect(rows).toEqual([{ ssl: true }]);
      await app.stop();
      app = undefined;
      // The same source with a CA that did not sign its certificate: named, and retried.
      sourceUrl.searchParams.set('sslrootcert', otherCaFile);
      app = await startCapturing();
      const check = await until('the capture names the certificate problem', async () => {
        const body = (await getJson(app!.port, '/readyz')).body;
        return body.checks.capture?.code === 'SOURCE_UNREACHABLE' ? body.checks.capture : undefined;
      });
      expect(check.error).toMatch(/^cannot reach the source database: certificate not trusted \(/);
      expect(check.ok).toBe(false);
    } finally {
      await app?.stop();
      app = undefined;
      await source.drop();
    }
  });
});
