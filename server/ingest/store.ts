import type { Pool } from 'pg';
import type { FailedRecord, StoredChange } from './change.js';
import { writeBatch } from './writer.js';

/**
 * SQLSTATE classes that mean "this data", not "this database": invalid values (22), constraint
 * violations (23) and rows over a limit (54). Retrying cannot help; anything else can.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(22|23|54)/.test(code);
}

/**
 * Stores a batch in one transaction. If the database refuses one of its records (a value
 * PostgreSQL cannot hold, such as a NUL character in JSON text), each change is stored on its own
 * and the refused ones go to msr.ingest_error, so one bad record never blocks its partition.
 * Throws only when the database is unavailable; the caller retries the whole batch, which is
 * idempotent.
 */
export async function storeBatch(
  pool: Pool,
  changes: readonly StoredChange[],
  failures: readonly FailedRecord[],
): Promise<{ failures: readonly FailedRecord[] }> {
  try {
    await writeBatch(pool, changes, failures);
    return { failures };
  } catch (err) {
    if (!isDataError(err)) throw err;
  }
  const refused: FailedRecord[] = [];
  for (const change of changes) {
    try {
      await writeBatch(pool, [change], []);
    } catch (err) {
      if (!isDataError(err)) throw err;
      const { topic, partition, offset, key, value, event } = change;
      refused.push({
        topic,
        partition,
        offset,
        key,
        // The built-in capture's changes have no record: keep what the change would have written.
        value: value ?? (event.after === null ? null : Buffer.from(event.after)),
        reason: 'REJECTED_BY_DATABASE',
        detail: (err as Error).message,
      });
    }
  }
  const all = [...failures, ...refused];
  await writeBatch(pool, [], all);
  return { failures: all };
}

/**
 * Stores a batch that spans several tables as one storeBatch per table, at once on as many
 * connections (the pool's size bounds them), and resolves when every one has committed. Each
 * table's changes keep their order, which is all that orders them: replay order is each event's
 * own (time, lsn, offset), keyless entities are numbered within their table, and a column the
 * source could not read is filled from the same entity's previous event. A batch cut short by a
 * failure may be partly stored; storing it again, as the caller does, is a no-op for that part.
 * Refused records go with the first table's transaction.
 */
export async function storeByTable(
  pool: Pool,
  changes: readonly StoredChange[],
  failures: readonly FailedRecord[],
): Promise<{ failures: readonly FailedRecord[] }> {
  const tables = new Map<string, StoredChange[]>();
  for (const change of changes) {
    const table = tables.get(change.topic);
    if (table) table.push(change);
    else tables.set(change.topic, [change]);
  }
  if (tables.size <= 1) return storeBatch(pool, changes, failures);
  const stores = [...tables.values()].map((table, i) => storeBatch(pool, table, i === 0 ? failures : []));
  // Every write settles before a failure is passed on: the caller's retry must not overlap a
  // table's write still under way.
  const results = await Promise.allSettled(stores);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return {
    failures: results.flatMap((r) => (r.status === 'fulfilled' ? r.value.failures : [])),
  };
}
