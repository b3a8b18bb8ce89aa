// What the ingest stores and refuses, shared by the Kafka decoder, the built-in capture and the
// writer (types only, so that none of them imports another for its shapes).

export type Op = 'c' | 'u' | 'd' | 'r' | 't';

/** What the writer reads of every change, whatever form its other columns take. */
interface EventHead {
  /** Source commit time in microseconds since the epoch. */
  readonly eventTimeUs: bigint;
  /** Canonical text of the primary key ('' for a truncate, which has none). */
  readonly entityId: string;
  readonly op: Op;
  /** Columns of `after` that Debezium could not read (unchanged TOAST values): keep the known ones. */
  readonly unavailable: readonly string[];
}

/** One change as msr.cdc_event stores it, from a Debezium record or the built-in capture. */
export interface ChangeEvent extends EventHead {
  readonly source: string;
  readonly schema: string;
  readonly table: string;
  readonly before: string | null;
  readonly after: string | null;
  readonly lsn: string | null;
  readonly txId: string | null;
  /**
   * A change of a table without a primary key: digests of its row images, by which the writer
   * finds the entity the change applies to (keyless.ts). entityId is then filled in by the writer.
   */
  readonly keyless?: KeylessImages;
}

/**
 * A change of a keyed table as the Kafka decoder hands it on: its columns from `source` to
 * `tx_id` already written as COPY text (event-columns.ts). Made where the record is decoded, on a
 * decoding thread, so that one string a change comes back to the main thread instead of ten, and
 * the main thread only adds the time and the coordinates. Keyless changes and truncates stay
 * whole: the writer reads their table and images.
 */
export interface CopyReadyEvent extends EventHead {
  readonly copyColumns: string;
}

export function isCopyReady(event: ChangeEvent | CopyReadyEvent): event is CopyReadyEvent {
  return 'copyColumns' in event;
}

export interface KeylessImages {
  readonly before: string | null;
  readonly after: string | null;
}

export type DecodeReason =
  | 'NOT_JSON'
  | 'NOT_A_CHANGE_EVENT'
  | 'UNKNOWN_OP'
  | 'MISSING_SOURCE'
  | 'MISSING_KEY'
  | 'BAD_TIMESTAMP'
  | 'BAD_VALUE';

/** Why a record is in msr.ingest_error. */
export type IngestErrorReason =
  DecodeReason | 'DECODER_FAILED' | 'REJECTED_BY_DATABASE' | 'REJECTED_BY_KAFKA';

/**
 * A decoded change with the coordinates that make storing it idempotent: the Kafka record it came
 * from, or for the built-in capture the table's topic name, the change's place in its transaction
 * and the transaction's commit LSN.
 */
export interface StoredChange {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly event: ChangeEvent | CopyReadyEvent;
}

/** A change with all of its columns at hand: the built-in capture's, and from Kafka a keyless change or a truncate. */
export interface WholeChange extends StoredChange {
  readonly event: ChangeEvent;
}

/** A record that could not be decoded, kept whole. */
export interface FailedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly reason: IngestErrorReason;
  readonly detail: string;
}
