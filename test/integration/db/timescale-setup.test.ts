import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialect, type TestDatabase } from '../../support/database.js';
import { startServerProcess } from '../../support/process.js';
import { startTimescaleServer, type TimescaleServer } from '../../../scripts/services/timescaledb-server.js';

// A TimescaleDB that cannot run MSR as it is set up stops MSR at start: exit code 2, one message
// naming the problem and the fix. TimescaleDB only: plain PostgreSQL has no extension to check.
describe.runIf(dialect === 'timescaledb')('a badly set up TimescaleDB (TimescaleDB only)', () => {
  let db: TestDatabase | undefined;
  let server: TimescaleServer | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await db?.drop();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (url: string) => {
    const proc = startServerProcess({ DATABASE_URL: url, AUTH_MODE: 'none', PORT: '0', LOG_LEVEL: 'warn' });
    const code = await Promise.race([
      proc.exited,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000)),
    ]);
    if (code === 'running') proc.child.kill('SIGKILL');
    return { code, output: proc.output() };
  };

  it('without timescaledb in shared_preload_libraries: TIMESCALEDB_NOT_PRELOADED, exit code 2', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-tsdb-nopreload-'));
    server = await startTimescaleServer(dir, ["shared_preload_libraries = ''"]);
    const admin = new pg.Client({ connectionString: server.adminUrl });
    await admin.connect();
    await admin.query('create database msr');
    await admin.end();
    const { code, output } = await start(server.adminUrl.replace(/\/postgres$/, '/msr'));
    expect(code).toBe(2);
    expect(output).toContain('does not preload it');
    expect(output).toContain('add timescaledb to shared_preload_libraries');
  });

  it('with another extension version than the database was created with: TIMESCALEDB_VERSION_MISMATCH, exit code 2', async () => {
    db = await createTestDatabase();
    // As if the database had been created by an older release and the server upgraded since.
    await db.pool.query(`update pg_extension set extversion = '2.21.0' where extname = 'timescaledb'`);
    const { code, output } = await start(db.url);
    expect(code, output).toBe(2);
    expect(output).toContain('created with timescaledb 2.21.0, which this server does not have');
  });
});
