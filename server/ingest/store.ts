import type { Pool } from 'pg';
import { isCopyReady, type FailedRecord, type StoredChange } from './change.js';
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
        value: value ?? (isCopyReady(event) || event.after === null ? null : Buffer.from(event.after)),
        reason: 'REJECTED_BY_DATABASE',
        detail: (err as Error).message,
      });
    }
  }
  const all = [...failures, ...refused];
  await writeBatch(pool, [], all);
  return { failures: all };
}
