import pg from 'pg';
import Cursor from 'pg-cursor';
import type { StoredChange } from '../ingest/writer.js';
import type { SourceTable } from './catalog.js';
import { rowChange, type CommitInfo, type Tuple } from './changes.js';

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
  write: (changes: StoredChange[]) => Promise<void>,
): Promise<number> {
  const client = new pg.Client({ ...clientConfig, types: RAW_TEXT });
  await client.connect();
  let rows = 0;
  try {
    await client.query('begin isolation level repeatable read read only');
    await client.query(`set transaction snapshot ${pg.escapeLiteral(point.snapshotName)}`);
    const commit: CommitInfo = {
      source,
      timeUs: point.timeUs,
      commitLsn: point.consistentLsn - 1n,
      xid: null,
    };
    for (const table of tables) {
      const cursor = client.query(
        new Cursor(`select * from ${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`),
      );
      let seq = 0;
      for (;;) {
        const batch = (await cursor.read(ROWS_PER_READ)) as Tuple[];
        if (batch.length === 0) break;
        await write(
          batch.map((tuple) =>
            rowChange(table, 'r', { old: null, new: tuple }, point.consistentLsn, seq++, commit),
          ),
        );
        rows += batch.length;
      }
      await cursor.close();
    }
    await client.query('commit');
    return rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}
