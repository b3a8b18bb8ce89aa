// The server a user might write instead of MSR, measured on the same data in the same run:
// "state at T" by folding every event from the start of the table, and a session that follows
// the history by polling cdc_event page by page with OFFSET/LIMIT on a connection of its own.
import type { Pool } from 'pg';
import Cursor from 'pg-cursor';

/** Folds every event up to t (streamed, so the fold itself does not run out of memory). */
export async function naiveScanState(
  pool: Pool,
  t: number,
): Promise<{ ms: number; entities: number; rows: number }> {
  const started = performance.now();
  const client = await pool.connect();
  const state = new Map<string, unknown>();
  let rows = 0;
  try {
    const cursor = client.query(
      new Cursor<{ k: string; tk: string; op: string; after: unknown }>(
        `select source || '|' || table_schema || '|' || table_name || '|' || entity_id as k,
                source || '|' || table_schema || '|' || table_name || '|' as tk, op, after
           from msr.cdc_event where event_timestamp <= to_timestamp($1 / 1000.0)
          order by event_timestamp, lsn nulls first, kafka_offset nulls first, id`,
        [t],
      ),
    );
    for (;;) {
      const batch = await cursor.read(10_000);
      if (batch.length === 0) break;
      rows += batch.length;
      for (const e of batch) {
        if (e.op === 't') {
          for (const key of state.keys()) if (key.startsWith(e.tk)) state.delete(key);
        } else if (e.op === 'd') state.delete(e.k);
        else state.set(e.k, e.after);
      }
    }
    await cursor.close();
  } finally {
    client.release();
  }
  return { ms: performance.now() - started, entities: state.size, rows };
}

/** Reads `pages` pages of `pageSize` events after `from` with OFFSET/LIMIT, as a polling loop would. */
export async function naivePollRate(
  pool: Pool,
  from: number,
  pages: number,
  pageSize = 1000,
): Promise<{ rows: number; rowsPerSecond: number; lastPageMs: number }> {
  const client = await pool.connect();
  let rows = 0;
  let lastPageMs = 0;
  const started = performance.now();
  try {
    for (let page = 0; page < pages; page++) {
      const t0 = performance.now();
      const { rowCount } = await client.query(
        `select * from msr.cdc_event where event_timestamp >= to_timestamp($1 / 1000.0)
          order by event_timestamp, id offset $2 limit $3`,
        [from, page * pageSize, pageSize],
      );
      lastPageMs = performance.now() - t0;
      rows += rowCount ?? 0;
      if ((rowCount ?? 0) < pageSize) break;
    }
  } finally {
    client.release();
  }
  return {
    rows,
    rowsPerSecond: Math.round((rows / (performance.now() - started)) * 1000),
    lastPageMs: Math.round(lastPageMs),
  };
}
