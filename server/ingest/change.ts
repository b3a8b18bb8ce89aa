// What the ingest stores and refuses, shared by the Kafka decoder, the built-in capture and the
// writer (types only, so that none of them imports another for its shapes).

export type Op = 'c' | 'u' | 'd' | 'r' | 't';

/** One change as msr.cdc_event stores it, from a Debezium record or the built-in capture. */
export interface ChangeEvent {
  /** Source commit time in microseconds since the epoch. */
  readonly eventTimeUs: bigint;
  readonly source: string;
  readonly schema: string;
  readonly table: string;
  /** Canonical text of the primary key ('' for a truncate, which has none). */
  readonly entityId: string;
  readonly op: Op;
  readonly before: string | null;
  readonly after: string | null;
  /** Columns of `after` that Debezium could not read (unchanged TOAST values): keep the known ones. */
  readonly unavailable: readonly string[];
  readonly lsn: string | null;
  readonly txId: string | null;
  /**
   * A change of a table without a primary key: digests of its row images, by which the writer
   * finds the entity the change applies to (keyless.ts). entityId is then filled in by the writer.
   */
  readonly keyless?: KeylessImages;
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
