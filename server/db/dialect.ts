import type { PoolClient } from 'pg';

export type Dialect = 'postgres' | 'timescaledb';

/**
 * TimescaleDB when the extension can be created here, plain PostgreSQL otherwise. A database that
 * was already migrated keeps the dialect it was migrated with.
 */
export async function detectDialect(client: PoolClient): Promise<Dialect> {
  const recorded = await client.query<{ dialect: Dialect }>(
    `select dialect from msr.schema_migration order by version limit 1`,
  );
  if (recorded.rows[0]) return recorded.rows[0].dialect;
  const available = await client.query(`select 1 from pg_available_extensions where name = 'timescaledb'`);
  return available.rowCount ? 'timescaledb' : 'postgres';
}

/** Whether a server's shared_preload_libraries setting loads TimescaleDB. */
export function preloadsTimescaleDb(sharedPreloadLibraries: string): boolean {
  return /(^|[\s,])timescaledb([\s,]|$)/.test(sharedPreloadLibraries);
}

/** The database server cannot run MSR's TimescaleDB dialect as it is set up; the message says the fix. */
export class TimescaleSetupError extends Error {
  /** A configuration problem of the deployment, as a bad variable is: the process exits with 2. */
  readonly exitCode = 2;
  constructor(
    readonly code: 'TIMESCALEDB_NOT_PRELOADED' | 'TIMESCALEDB_VERSION_MISMATCH',
    message: string,
  ) {
    super(message);
    this.name = 'TimescaleSetupError';
  }
}

/** The database's extension version is not the one the server can run: the message says the fix. */
function versionMismatch(installed: string, problem: string): TimescaleSetupError {
  return new TimescaleSetupError(
    'TIMESCALEDB_VERSION_MISMATCH',
    `this database was created with timescaledb ${installed}${problem}: install timescaledb ${installed} ` +
      `on the server, or update the database's extension (ALTER EXTENSION timescaledb UPDATE, in a ` +
      `fresh session, as TimescaleDB's upgrade guide says)`,
  );
}

/**
 * TimescaleDB works only preloaded, and a database runs the extension version it was created (or
 * last updated) with: refuse to start otherwise, naming the fix, rather than fail on some later query.
 */
export async function checkTimescaleSetup(client: PoolClient): Promise<void> {
  const { rows } = await client.query<{ preload: string; installed: string | null; offered: string | null }>(`
    select current_setting('shared_preload_libraries') as preload,
           (select extversion from pg_extension where extname = 'timescaledb') as installed,
           (select default_version from pg_available_extensions where name = 'timescaledb') as offered`);
  const { preload, installed, offered } = rows[0]!;
  if (!preloadsTimescaleDb(preload)) {
    throw new TimescaleSetupError(
      'TIMESCALEDB_NOT_PRELOADED',
      `this database uses TimescaleDB but the server does not preload it (shared_preload_libraries = '${preload}'): ` +
        'add timescaledb to shared_preload_libraries in postgresql.conf and restart PostgreSQL',
    );
  }
  if (installed && offered && installed !== offered) {
    throw versionMismatch(installed, ` but the server offers ${offered}`);
  }
}

/**
 * TimescaleDB's loader fails every statement of a database whose extension version has no library
 * on the server: the same mismatch, seen before checkTimescaleSetup could ask.
 */
export function asTimescaleSetupError(err: unknown): unknown {
  const missing = /could not access file "\$libdir\/timescaledb-([\w.-]+)"/.exec(
    (err as Error)?.message ?? '',
  );
  return missing ? versionMismatch(missing[1]!, ', which this server does not have') : err;
}
