import { DecodeError, decodeRecord, type Coordinates } from './debezium.js';
import type { ChangeEvent, CopyReadyEvent, FailedRecord, IngestErrorReason, StoredChange } from './change.js';
import { copyReady } from './event-columns.js';

/** What the decoder reads of a Kafka record. */
export interface RecordBytes {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

/** A Kafka record as the ingest keeps it. */
export interface RawRecord extends RecordBytes {
  readonly offset: string;
}

/**
 * What one record decodes to, without its bytes: small enough to pass back from a decoding
 * worker, which then need not send the records it was given back again.
 */
export type DecodeResult =
  | { readonly event: ChangeEvent | CopyReadyEvent; readonly coordinates?: Coordinates }
  | { readonly reason: IngestErrorReason; readonly detail: string }
  | 'skip';

export interface DecodedBatch {
  readonly changes: StoredChange[];
  readonly failures: FailedRecord[];
  readonly skipped: number;
}

export function decodeResults(topic: string, records: readonly RecordBytes[]): DecodeResult[] {
  return records.map(({ key, value }) => {
    try {
      const decoded = decodeRecord({ topic, key, value });
      if (decoded.kind === 'skip') return 'skip';
      const event = copyReady(decoded.event);
      return decoded.coordinates ? { event, coordinates: decoded.coordinates } : { event };
    } catch (err) {
      return {
        reason: err instanceof DecodeError ? err.reason : 'DECODER_FAILED',
        detail: (err as Error).message,
      };
    }
  });
}

/** Joins each record's result with the record: changes to store, and records kept whole. */
export function assembleBatch(
  topic: string,
  partition: number,
  records: readonly RawRecord[],
  results: readonly DecodeResult[],
): DecodedBatch {
  const changes: StoredChange[] = [];
  const failures: FailedRecord[] = [];
  let skipped = 0;
  records.forEach(({ key, value, offset }, i) => {
    const result = results[i]!;
    if (result === 'skip') skipped++;
    else if ('event' in result) {
      const at = result.coordinates ?? { partition, offset };
      changes.push({ topic, ...at, key, value, event: result.event });
    } else failures.push({ topic, partition, offset, key, value, ...result });
  });
  return { changes, failures, skipped };
}
