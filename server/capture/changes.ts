import type { KeylessImages, Op, WholeChange } from '../ingest/change.js';
import { rowDigest } from '../ingest/keyless.js';
import { entityIdOf } from '../ingest/entity-id.js';
import { jsonText, memberObject, type JsonValue } from '../ingest/json-text.js';
import type { SourceTable } from './catalog.js';
import { columnValue, type ColumnType } from './values.js';

/** Where a change sits: its transaction's commit (time, LSN, id) and the source's name. */
export interface CommitInfo {
  readonly source: string;
  /** Commit time in microseconds since the epoch. */
  readonly timeUs: bigint;
  readonly commitLsn: bigint;
  readonly xid: string | null;
}

/** A row as pgoutput or a snapshot gives it: text values, null, or undefined for an unchanged TOAST value. */
export type Tuple = Readonly<Record<string, string | null | undefined>>;

const TEXT: ColumnType = { category: 'S', name: 'text' };

/** A row image: its known values, and the columns whose value the source did not send (TOAST). */
export interface Image {
  readonly row: { [column: string]: JsonValue };
  readonly unavailable: string[];
}

/**
 * A captured change as stored, with what its Debezium record is made of (kafka-records.ts) when
 * the capture writes to Kafka.
 */
export interface CapturedChange extends WholeChange {
  readonly capture: {
    readonly table: SourceTable;
    readonly commit: CommitInfo;
    /** The change's place in its transaction (-1: a snapshot's truncate). */
    readonly seq: number;
    readonly before: Image | null;
    readonly after: Image | null;
    /** The primary key's columns; null for a table without one and for a truncate. */
    readonly key: { [column: string]: JsonValue } | null;
  };
}

function image(table: SourceTable, tuple: Tuple | null): Image | null {
  if (!tuple) return null;
  const row = memberObject();
  const unavailable: string[] = [];
  for (const [column, text] of Object.entries(tuple)) {
    if (text === undefined) unavailable.push(column);
    else row[column] = columnValue(table.columns.get(column) ?? TEXT, text);
  }
  return { row, unavailable };
}

/**
 * One change as the writer stores it, with the coordinates that make storing it again a no-op:
 * the table's topic name (as Debezium would name it), the change's place in its transaction and
 * the commit LSN.
 */
export function rowChange(
  table: SourceTable,
  op: Exclude<Op, 't'>,
  tuples: { readonly old: Tuple | null; readonly new: Tuple | null; readonly key?: Tuple | null },
  lsn: bigint,
  seq: number,
  commit: CommitInfo,
): CapturedChange {
  const before = image(table, tuples.old);
  const after = op === 'd' ? null : image(table, tuples.new);
  const keyImage = (after ?? before ?? image(table, tuples.key ?? null))?.row ?? memberObject();
  const key = Object.fromEntries(table.key.map((column) => [column, keyImage[column] ?? null]));
  const afterText = after ? jsonText(after.row) : null;
  const keyless = table.key.length === 0;
  if (keyless && (op === 'u' || op === 'd') && !before) throw new KeylessWithoutImage(table);
  return stored(table, seq, commit, {
    images: { before, after, key: keyless ? null : key },
    entityId: keyless ? '' : entityIdOf(key),
    ...(keyless
      ? { keyless: { before: before && rowDigest(before.row), after: after && rowDigest(after.row) } }
      : {}),
    op,
    before: before ? jsonText(before.row) : null,
    after: afterText,
    unavailable: after?.unavailable ?? [],
    lsn,
  });
}

/**
 * An update or delete of a table without a primary key and without REPLICA IDENTITY FULL: the row
 * it changed is unknown, so it cannot be replayed (the capture records it in msr.ingest_error).
 */
export class KeylessWithoutImage extends Error {
  constructor(readonly table: SourceTable) {
    super(
      `${table.schema}.${table.name} has no primary key and no REPLICA IDENTITY FULL: ` +
        'the row an update or delete changed cannot be known',
    );
    this.name = 'KeylessWithoutImage';
  }
}

/** A truncate removes every entity of the table: one event without an entity. */
export function truncateChange(
  table: SourceTable,
  lsn: bigint,
  seq: number,
  commit: CommitInfo,
): CapturedChange {
  return stored(table, seq, commit, {
    images: { before: null, after: null, key: null },
    entityId: '',
    op: 't',
    before: null,
    after: null,
    unavailable: [],
    lsn,
  });
}

function stored(
  table: SourceTable,
  seq: number,
  commit: CommitInfo,
  change: {
    images: { before: Image | null; after: Image | null; key: { [column: string]: JsonValue } | null };
    entityId: string;
    keyless?: KeylessImages;
    op: Op;
    before: string | null;
    after: string | null;
    unavailable: string[];
    lsn: bigint;
  },
): CapturedChange {
  const topic = `${commit.source}.${table.schema}.${table.name}`;
  return {
    capture: { table, commit, seq, ...change.images },
    topic,
    partition: seq,
    offset: commit.commitLsn.toString(),
    key: null,
    // No Kafka record: a change the database refuses is kept by its after image (store.ts).
    value: null,
    event: {
      eventTimeUs: commit.timeUs,
      source: commit.source,
      schema: table.schema,
      table: table.name,
      entityId: change.entityId,
      ...(change.keyless ? { keyless: change.keyless } : {}),
      op: change.op,
      before: change.before,
      after: change.after,
      unavailable: change.unavailable,
      lsn: change.lsn.toString(),
      txId: commit.xid,
    },
  };
}
