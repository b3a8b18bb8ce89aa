import pg from 'pg';
import { parse } from 'pg-connection-string';
import { preloadsTimescaleDb } from '../db/dialect.js';
import type { BackupMetadata } from './backup.js';
import { pgClientConfig } from '../db/tls.js';
import { runPgTool } from './pg-tools.js';

/** A restore that would not work here, refused before anything was changed. */
export class RestoreRefused extends Error {
  readonly code = 'RESTORE_REFUSED';
}

/** The backup's dump restored into it does not hold what backup.json says it holds. */
export class BackupMismatch extends Error {
  readonly code = 'BACKUP_MISMATCH';
}

/** The URL of the same server's maintenance database, where databases are dropped and created. */
function maintenanceUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  return url.toString();
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgClientConfig(url));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * Refuses, before anything is changed, a restore into a server or database that cannot take the
 * backup as it is: a TimescaleDB backup needs the same extension version, preloaded; a database
 * that already holds MSR must be of the backup's dialect (and extension version).
 */
export async function checkRestoreTarget(databaseUrl: string, backup: BackupMetadata): Promise<void> {
  const database = parse(databaseUrl).database;
  if (!database) throw new RestoreRefused('DATABASE_URL names no database to restore into');
  await withClient(maintenanceUrl(databaseUrl), async (client) => {
    if (backup.dialect === 'timescaledb') {
      const want = backup.timescaledbVersion;
      const { rows } = await client.query<{ available: boolean; preload: string }>(
        `select exists (select 1 from pg_available_extension_versions where name = 'timescaledb' and version = $1) as available,
                current_setting('shared_preload_libraries') as preload`,
        [want],
      );
      if (!rows[0]!.available) {
        throw new RestoreRefused(
          `the backup is of a TimescaleDB ${want} database; this server does not offer timescaledb ${want}: ` +
            'restore onto a server with that version installed',
        );
      }
      if (!preloadsTimescaleDb(rows[0]!.preload)) {
        throw new RestoreRefused(
          "this server does not preload timescaledb: set shared_preload_libraries = 'timescaledb' and restart it",
        );
      }
    }
    const { rows } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (rows.length === 0) return;
    await withClient(databaseUrl, async (target) => {
      const { rows: found } = await target.query<{ migrated: boolean; timescaledb: string | null }>(`
        select to_regclass('msr.schema_migration') is not null as migrated,
               (select extversion from pg_extension where extname = 'timescaledb') as timescaledb`);
      const { migrated, timescaledb } = found[0]!;
      const dialect = migrated
        ? (
            await target.query<{ dialect: string }>(
              'select dialect from msr.schema_migration order by version desc limit 1',
            )
          ).rows[0]?.dialect
        : undefined;
      if (dialect && dialect !== backup.dialect) {
        throw new RestoreRefused(
          `database ${database} holds the ${dialect} dialect; the backup is ${backup.dialect}: restore into a database of the same dialect`,
        );
      }
      if (timescaledb && backup.timescaledbVersion && timescaledb !== backup.timescaledbVersion) {
        throw new RestoreRefused(
          `database ${database} has timescaledb ${timescaledb}; the backup was taken with ${backup.timescaledbVersion}`,
        );
      }
    });
  });
}

/**
 * Restores the dump into `databaseUrl`'s database, made anew (TimescaleDB's procedure: a fresh
 * database with the backup's extension version, timescaledb_pre_restore(), pg_restore,
 * timescaledb_post_restore()), then checks that it holds the events backup.json counted.
 */
export async function restoreDump(
  databaseUrl: string,
  dumpFile: string,
  backup: BackupMetadata,
): Promise<number> {
  const database = parse(databaseUrl).database!;
  await withClient(maintenanceUrl(databaseUrl), async (client) => {
    await client.query(`drop database if exists ${quoteIdent(database)} with (force)`);
    await client.query(`create database ${quoteIdent(database)}`);
  });
  const timescale = backup.dialect === 'timescaledb';
  if (timescale) {
    await withClient(databaseUrl, async (client) => {
      await client.query(
        `create extension timescaledb version '${backup.timescaledbVersion!.replace(/'/g, "''")}'`,
      );
      await client.query('select timescaledb_pre_restore()');
    });
  }
  await runPgTool(
    'pg_restore',
    ['--no-owner', '--exit-on-error', `--dbname=${database}`, dumpFile],
    databaseUrl,
  );
  return withClient(databaseUrl, async (client) => {
    if (timescale) await client.query('select timescaledb_post_restore()');
    const { rows } = await client.query<{ events: number; earliest: Date | null; latest: Date | null }>(
      'select count(*)::int as events, min(event_timestamp) as earliest, max(event_timestamp) as latest from msr.cdc_event',
    );
    const got = rows[0]!;
    const range = (a: Date | null, b: Date | null) =>
      `${a?.toISOString() ?? '-'} to ${b?.toISOString() ?? '-'}`;
    const restored = range(got.earliest, got.latest);
    const recorded = `${backup.earliest ?? '-'} to ${backup.latest ?? '-'}`;
    if (got.events !== backup.events || restored !== recorded) {
      throw new BackupMismatch(
        `the dump restored ${got.events} events (${restored}); backup.json says ${backup.events} (${recorded})`,
      );
    }
    return got.events;
  });
}

/**
 * Checks a backup against its own metadata without touching the database: its dump restored into a
 * scratch database beside DATABASE_URL's, counted, then dropped.
 */
export async function checkBackup(
  databaseUrl: string,
  dumpFile: string,
  backup: BackupMetadata,
): Promise<number> {
  const url = new URL(databaseUrl);
  const scratch = `msr_verify_${process.pid}_${Date.now().toString(36)}`;
  url.pathname = `/${scratch}`;
  const scratchUrl = url.toString();
  await checkRestoreTarget(scratchUrl, backup);
  try {
    return await restoreDump(scratchUrl, dumpFile, backup);
  } finally {
    await withClient(maintenanceUrl(databaseUrl), (client) =>
      client.query(`drop database if exists ${quoteIdent(scratch)} with (force)`),
    );
  }
}
