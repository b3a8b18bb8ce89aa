import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import { asTimescaleSetupError, checkTimescaleSetup, detectDialect, type Dialect } from './dialect.js';
import { AdvisoryLock } from './locks.js';
import { SQL_DIR } from '../assets.js';

/** A file whose first line is this comment runs outside a transaction (for statements that refuse one). */
const NO_TRANSACTION = '-- msr:no-transaction';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export class MigrationError extends Error {
  constructor(
    readonly code: 'SCHEMA_AHEAD' | 'MIGRATION_CHANGED' | 'MIGRATION_FAILED' | 'MIGRATIONS_INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

export interface MigrationResult {
  readonly dialect: Dialect;
  readonly applied: readonly number[];
  readonly version: number;
}

/** Files named NNN_name.sql (both dialects) or NNN_name.<dialect>.sql, one per version. */
export async function loadMigrations(dialect: Dialect, dir: URL = SQL_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const byVersion = new Map<number, Migration>();
  for (const file of files) {
    const match = /^(\d{3})_([a-z0-9_]+?)(?:\.(postgres|timescaledb))?\.sql$/.exec(file);
    if (!match) throw new MigrationError('MIGRATIONS_INVALID', `unexpected file in sql/: ${file}`);
    const [, num, name, fileDialect] = match as unknown as [string, string, string, Dialect | undefined];
    if (fileDialect && fileDialect !== dialect) continue;
    const version = Number(num);
    if (byVersion.has(version)) {
      throw new MigrationError(
        'MIGRATIONS_INVALID',
        `two files for migration ${num} in the ${dialect} dialect`,
      );
    }
    const sql = await readFile(new URL(file, dir), 'utf8');
    byVersion.set(version, { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}

/**
 * Brings the msr schema up to the code's version. Safe when several servers start at once (an
 * advisory lock makes them take turns) and refuses a database migrated by newer code.
 */
export async function migrate(pool: Pool, log: Logger, dir: URL = SQL_DIR): Promise<MigrationResult> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [AdvisoryLock.MIGRATION]);
    try {
      return await migrateLocked(client, log, dir);
    } finally {
      await client.query('select pg_advisory_unlock($1)', [AdvisoryLock.MIGRATION]);
    }
  } catch (err) {
    throw asTimescaleSetupError(err);
  } finally {
    client.release();
  }
}

/** Every applied migration must be one this code has, unchanged. */
function checkApplied(
  rows: readonly { version: number; name: string; checksum: string }[],
  known: ReadonlyMap<number, Migration>,
  codeVersion: number,
): void {
  for (const row of rows) {
    const migration = known.get(row.version);
    if (!migration) {
      throw new MigrationError(
        'SCHEMA_AHEAD',
        `the database has migration ${row.version} (${row.name}) that this code does not know ` +
          `(code is at ${codeVersion}); run a newer MSR or restore a matching backup`,
      );
    }
    if (migration.checksum !== row.checksum) {
      throw new MigrationError(
        'MIGRATION_CHANGED',
        `migration ${row.version} (${row.name}) was changed after it was applied; add a new migration instead`,
      );
    }
  }
}

/** One migration and its record, in one transaction unless the file asks for none. */
async function apply(client: PoolClient, migration: Migration, dialect: Dialect): Promise<void> {
  const transactional = !migration.sql.startsWith(NO_TRANSACTION);
  try {
    if (transactional) await client.query('begin');
    await client.query(migration.sql);
    await client.query(
      'insert into msr.schema_migration (version, name, dialect, checksum) values ($1, $2, $3, $4)',
      [migration.version, migration.name, dialect, migration.checksum],
    );
    if (transactional) await client.query('commit');
  } catch (err) {
    if (transactional) await client.query('rollback').catch(() => undefined);
    throw new MigrationError(
      'MIGRATION_FAILED',
      `migration ${migration.version} (${migration.name}, ${dialect}) failed: ${(err as Error).message}`,
    );
  }
}

async function migrateLocked(client: PoolClient, log: Logger, dir: URL): Promise<MigrationResult> {
  await client.query(`create schema if not exists msr`);
  await client.query(`
    create table if not exists msr.schema_migration (
      version int primary key,
      name text not null,
      dialect text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`);
  const dialect = await detectDialect(client);
  if (dialect === 'timescaledb') {
    await checkTimescaleSetup(client);
    await client.query('create extension if not exists timescaledb');
  }

  const migrations = await loadMigrations(dialect, dir);
  const known = new Map(migrations.map((m) => [m.version, m]));
  const applied = await client.query<{ version: number; name: string; checksum: string }>(
    'select version, name, checksum from msr.schema_migration order by version',
  );
  const codeVersion = migrations.at(-1)?.version ?? 0;
  checkApplied(applied.rows, known, codeVersion);

  const done = new Set(applied.rows.map((r) => r.version));
  const ran: number[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    const started = Date.now();
    await apply(client, migration, dialect);
    log.info(
      { version: migration.version, name: migration.name, dialect, ms: Date.now() - started },
      'migration applied',
    );
    ran.push(migration.version);
  }
  return { dialect, applied: ran, version: codeVersion };
}

/** For /readyz: the database answers and holds every migration this code has. */
export async function schemaIsCurrent(pool: Pool, expectedVersion: number): Promise<boolean> {
  const result = await pool.query<{ version: number | null }>(
    'select max(version) as version from msr.schema_migration',
  );
  return result.rows[0]?.version === expectedVersion;
}
