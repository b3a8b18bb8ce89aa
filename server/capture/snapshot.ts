import pg from 'pg';
import Cursor from 'pg-cursor';
import type { SourceTable } from './catalog.js';
import { rowChange, truncateChange, type CapturedChange, type CommitInfo, type Tuple } from './changes.js';
import { lsnValue } from './lsn.js';

/** Rows read from the source per step, and so per insert into cdc_event. */
const ROWS_PER_READ = 2_000;

/** Every value as PostgreSQL's text output, which values.ts converts like a streamed one. */
const RAW_TEXT: pg.CustomTypesConfig = { getTypeParser: () => (value: string) => value };

export interface SnapshotPoint {
  /** The snapshot the slot exported as it was created: the state just before its first streamed change. */
  readonly snapshotName: string;
  /** The slot's consistent point. */
  readonly consistentLsn: bigint;
  /** The source's clock just before the slot was created: no streamed change has an earlier commit time. */
  readonly timeUs: bigint;
}

/**
 * Reads every row of the captured tables as they were at the slot's exported snapshot and hands
 * them on as `r` events, in steps. The events carry the snapshot's time and the consistent point
 * (their coordinates use consistent point - 1, below every streamed commit), so the stream that
 * follows meets them with no gap and no overlap. Returns the number of rows.
 */
export async function readSnapshot(
  clientConfig: pg.ClientConfig,
  point: SnapshotPoint,
  tables: readonly SourceTable[],
  source: string,
  write: (changes: CapturedChange[]) => Promise<void>,
): Promise<number> {
  return inSnapshot(clientConfig, async (client) => {
    await client.query(`set transaction snapshot ${pg.escapeLiteral(point.snapshotName)}`);
    const commit: CommitInfo = {
      source,
      timeUs: point.timeUs,
      commitLsn: point.consistentLsn - 1n,
      xid: null,
    };
    let rows = 0;
    for (const table of tables) rows += await readTable(client, table, point.consistentLsn, commit, write);
    return rows;
  });
}

/**
 * A snapshot of chosen tables while the stream goes on (POST /api/v1/snapshots): their rows as of
 * one moment of the source, as a truncate followed by an `r` per row, all at that moment's time
 * and WAL position. Changes committed before it are older, changes after it newer, so replay
 * gives each table as the snapshot found it, then its later changes; rows MSR had that the source
 * no longer has (or a keyless table's rows) are gone. Returns the number of rows.
 */
export async function readTablesNow(
  clientConfig: pg.ClientConfig,
  tables: readonly SourceTable[],
  source: string,
  write: (changes: CapturedChange[]) => Promise<void>,
): Promise<number> {
  return inSnapshot(clientConfig, async (client) => {
    // The first statement fixes the transaction's snapshot: its WAL position and time go with it.
    const { rows } = await client.query<{ lsn: string; us: string }>(
      `select pg_current_wal_lsn()::text as lsn, (extract(epoch from clock_timestamp()) * 1000000)::bigint::text as us`,
    );
    const lsn = lsnValue(rows[0]!.lsn);
    // An odd position below the current one: no WAL record starts there, so no streamed commit has it.
    const commit: CommitInfo = { source, timeUs: BigInt(rows[0]!.us), commitLsn: lsn - 1n, xid: null };
    let count = 0;
    for (const table of tables) {
      await write([truncateChange(table, lsn - 1n, -1, commit)]);
      count += await readTable(client, table, lsn, commit, write);
    }
    return count;
  });
}

async function inSnapshot<T>(
  clientConfig: pg.ClientConfig,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ ...clientConfig, types: RAW_TEXT });
  await client.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const result = await work(client);
    await client.query('commit');
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function readTable(
  client: pg.Client,
  table: SourceTable,
  lsn: bigint,
  commit: CommitInfo,
  write: (changes: CapturedChange[]) => Promise<void>,
): Promise<number> {
  const cursor = client.query(
    new Cursor<(string | null)[]>(
      `select * from ${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`,
      [],
      { rowMode: 'array' },
    ),
  );
  let seq = 0;
  for (;;) {
    const batch = await readTuples(cursor, ROWS_PER_READ);
    if (batch.length === 0) break;
    await write(batch.map((tuple) => rowChange(table, 'r', { old: null, new: tuple }, lsn, seq++, commit)));
  }
  await cursor.close();
  return seq;
}

/**
 * The cursor's next rows as tuples named by the result's columns. pg names a row's columns on a
 * plain object, where a column named "__proto__" would set the prototype and be lost; a tuple has
 * no prototype (as pgoutput's tuples have none).
 */
function readTuples(cursor: Cursor<(string | null)[]>, count: number): Promise<Tuple[]> {
  return new Promise((resolve, reject) => {
    cursor.read(count, (err, rows, result) => {
      if (err) return reject(err);
      const names = result?.fields.map((field) => field.name) ?? [];
      resolve(
        rows.map((values) => {
          const tuple = Object.create(null) as Record<string, string | null>;
          names.forEach((name, i) => (tuple[name] = values[i] ?? null));
          return tuple;
        }),
      );
    });
  });
}
