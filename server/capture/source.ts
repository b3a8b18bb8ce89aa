import pg from 'pg';
import type { CaptureConfig } from '../config.js';
import { pgClientConfig } from '../db/tls.js';
import type { SourceTable } from './catalog.js';
import { lsnValue } from './lsn.js';
import { CaptureProblem } from './problem.js';

/**
 * Session settings for every capture connection to the source: pgoutput and snapshots then write
 * values in the forms values.ts reads.
 */
export const SOURCE_SETTINGS =
  '-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex';

/** Application name of MSR's walsender connections: a slot held by another name is another tool's. */
export const CAPTURE_APPLICATION = 'msr-capture';

export function sourceClientConfig(config: CaptureConfig, replication = false): pg.ClientConfig {
  return {
    ...pgClientConfig(config.sourceUrl),
    options: SOURCE_SETTINGS,
    application_name: CAPTURE_APPLICATION,
    connectionTimeoutMillis: 10_000,
    ...(replication ? { replication: 'database' } : {}),
  };
}

/** The source must decode WAL for us and let our user replicate; say how to fix it if not. */
export async function checkSource(source: pg.Pool): Promise<void> {
  const { rows } = await source.query<{ wal_level: string; user: string; replicates: boolean }>(
    `select current_setting('wal_level') as wal_level, current_user as user,
            (select rolreplication or rolsuper from pg_roles where rolname = current_user) as replicates`,
  );
  const { wal_level, user, replicates } = rows[0]!;
  if (wal_level !== 'logical') {
    throw new CaptureProblem(
      'WAL_LEVEL',
      `the source runs with wal_level=${wal_level}: set wal_level = logical in its postgresql.conf and restart it`,
    );
  }
  if (!replicates) {
    throw new CaptureProblem(
      'NO_REPLICATION',
      `the source user ${user} may not replicate: ALTER ROLE ${pg.escapeIdentifier(user)} REPLICATION`,
    );
  }
}

/** The publication exists, or is created for CAPTURE_TABLES when the user may. */
export async function ensurePublication(source: pg.Pool, config: CaptureConfig): Promise<void> {
  const { rowCount } = await source.query('select 1 from pg_publication where pubname = $1', [
    config.publication,
  ]);
  if (rowCount) return;
  const name = pg.escapeIdentifier(config.publication);
  if (!config.tables?.length) {
    throw new CaptureProblem(
      'NO_PUBLICATION',
      `the source has no publication ${config.publication}: CREATE PUBLICATION ${name} FOR TABLE <tables> ` +
        'on it, or set CAPTURE_TABLES and MSR creates it',
    );
  }
  const tables = config.tables.map((t) =>
    t
      .split('.')
      .map((part) => pg.escapeIdentifier(part))
      .join('.'),
  );
  try {
    await source.query(`create publication ${name} for table ${tables.join(', ')}`);
  } catch (err) {
    throw new CaptureProblem(
      'NO_PUBLICATION',
      `could not create publication ${config.publication} for ${config.tables.join(', ')}: ${(err as Error).message}`,
    );
  }
}

export interface SlotInfo {
  readonly plugin: string;
  readonly active: boolean;
  /** application_name of the connection streaming it, when active. */
  readonly holder: string | null;
  readonly holderPid: number | null;
  readonly confirmedLsn: bigint | null;
  /** WAL the slot keeps on the source, and how far its confirmed position is behind. */
  readonly retainedBytes: number;
  readonly lagBytes: number;
}

export async function slotInfo(source: pg.Pool, slot: string): Promise<SlotInfo | undefined> {
  const { rows } = await source.query<{
    plugin: string;
    active: boolean;
    holder: string | null;
    pid: number | null;
    confirmed: string | null;
    retained: string | null;
    lag: string | null;
  }>(
    `select s.plugin, s.active, r.application_name as holder, s.active_pid as pid,
            s.confirmed_flush_lsn::text as confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint::text as retained,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint::text as lag
       from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
      where s.slot_name = $1 and s.database = current_database()`,
    [slot],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    plugin: r.plugin,
    active: r.active,
    holder: r.holder,
    holderPid: r.pid,
    confirmedLsn: r.confirmed ? lsnValue(r.confirmed) : null,
    retainedBytes: Number(r.retained ?? 0),
    lagBytes: Number(r.lag ?? 0),
  };
}

export async function dropSlot(source: pg.Pool, slot: string): Promise<void> {
  await source.query('select pg_drop_replication_slot($1)', [slot]);
}

/** Tables that need attention: replay of a table without a key needs full row images. */
export function tableWarnings(tables: readonly SourceTable[]): string[] {
  const warnings: string[] = [];
  for (const t of tables) {
    const name = `${t.schema}.${t.name}`;
    if (t.replicaIdentity === 'f') continue;
    warnings.push(
      t.key.length === 0
        ? `${name} has no primary key and no REPLICA IDENTITY FULL: its changes cannot be replayed ` +
            `(ALTER TABLE ${name} REPLICA IDENTITY FULL)`
        : `${name} lacks REPLICA IDENTITY FULL: updates and deletes carry no before image, so reverse ` +
            `play cannot undo them (ALTER TABLE ${name} REPLICA IDENTITY FULL)`,
    );
  }
  return warnings;
}
