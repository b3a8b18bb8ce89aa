import {
  decodeStruct,
  decodeValue,
  EncodingError,
  fieldsOf,
  isUnavailable,
  type ConnectSchema,
} from './encodings.js';
import { entityIdOf, scalarText } from './entity-id.js';
import { jsonText, JsonLiteral, memberObject, type JsonValue } from './json-text.js';
import { mayBeRounded, parseExactly } from '../exact-json.js';
import { rowDigest } from './keyless.js';
import { isWrapped, SchemaPrefixes } from './schema-prefix.js';
import type { ChangeEvent, DecodeReason, KeylessImages, Op } from './change.js';

// Decodes one Kafka record of Debezium's PostgreSQL connector (JSON converter, with or without
// embedded schemas) into a cdc_event row. Tombstones, heartbeats and transaction markers are
// skipped; anything else that is not a change event is a DecodeError with a stable reason.

/**
 * Where a change is stored, when the record says so itself: MSR's capture writing to Kafka gives
 * each change the coordinates the capture would store directly (its place in the transaction and
 * the commit LSN), so a change produced twice is stored once. Other records are stored at their
 * Kafka partition and offset.
 */
export interface Coordinates {
  readonly partition: number;
  readonly offset: string;
}

export type Decoded =
  | { readonly kind: 'change'; readonly event: ChangeEvent; readonly coordinates?: Coordinates }
  | { readonly kind: 'skip'; readonly why: string };

/** `source.connector` of the records MSR's capture writes to Kafka (capture/kafka-records.ts). */
export const MSR_CONNECTOR = 'msr';

export class DecodeError extends Error {
  constructor(
    readonly reason: DecodeReason,
    message: string,
  ) {
    super(message);
    this.name = 'DecodeError';
  }
}

export interface KafkaRecord {
  readonly topic: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
}

const OPS = new Set<string>(['c', 'u', 'd', 'r', 't']);

export function isHeartbeatTopic(topic: string): boolean {
  return topic.startsWith('__debezium-heartbeat');
}

export function decodeRecord(record: KafkaRecord): Decoded {
  if (isHeartbeatTopic(record.topic)) return { kind: 'skip', why: 'heartbeat' };
  if (record.value === null || record.value.length === 0) return { kind: 'skip', why: 'tombstone' };
  let { schema, payload } = unwrap(parseJson(record.topic, record.value, 'value'));
  if (isRecord(payload) && mayHaveRounded(payload)) {
    ({ schema, payload } = unwrap(parseExactly(record.value.toString('utf8'), literal)));
  }
  if (!isRecord(payload)) {
    throw new DecodeError('NOT_A_CHANGE_EVENT', 'the value is not a Debezium change event object');
  }
  const envelope = payload as Record<string, unknown>;
  if (envelope.op === undefined && (envelope.status === 'BEGIN' || envelope.status === 'END')) {
    return { kind: 'skip', why: 'transaction marker' };
  }
  if (envelope.op === 'm') return { kind: 'skip', why: 'logical decoding message' };
  if (typeof envelope.op !== 'string') throw new DecodeError('NOT_A_CHANGE_EVENT', 'the value has no op');
  if (!OPS.has(envelope.op)) throw new DecodeError('UNKNOWN_OP', `unknown op ${JSON.stringify(envelope.op)}`);
  const op = envelope.op as Op;

  const source = envelope.source as Record<string, unknown> | undefined;
  if (typeof source !== 'object' || source === null)
    throw new DecodeError('MISSING_SOURCE', 'the event has no source block');
  const name = text(source.name, 'source.name');
  const tableSchema = text(source.schema, 'source.schema');
  const table = text(source.table, 'source.table');

  const fields = schema ? fieldsOf(schema) : undefined;
  try {
    const keyless = op !== 't' && (record.key === null || record.key.length === 0);
    const after = op === 'd' || op === 't' ? null : image(fields?.get('after'), envelope.after, keyless);
    const before = image(fields?.get('before'), envelope.before, keyless);
    const coordinates = captureCoordinates(source);
    return {
      kind: 'change',
      ...(coordinates ? { coordinates } : {}),
      event: {
        eventTimeUs: commitTime(source),
        source: name,
        schema: tableSchema,
        table,
        entityId: op === 't' || keyless ? '' : entityId(record.key, record.topic),
        ...(keyless ? { keyless: keylessImages(op, before?.row ?? null, after?.row ?? null) } : {}),
        op,
        before: before?.text ?? null,
        after: after?.text ?? null,
        unavailable: after?.unavailable ?? [],
        lsn: integerText(source.lsn),
        txId: integerText(source.txId),
      },
    };
  } catch (err) {
    if (err instanceof EncodingError) throw new DecodeError('BAD_VALUE', err.message);
    throw err;
  }
}

function captureCoordinates(source: Record<string, unknown>): Coordinates | undefined {
  if (source.connector !== MSR_CONNECTOR) return undefined;
  const { msr_seq: seq, msr_commit_lsn: lsn } = source;
  if (typeof seq !== 'number' || !Number.isInteger(seq) || typeof lsn !== 'string' || !/^\d+$/.test(lsn)) {
    throw new DecodeError('MISSING_SOURCE', 'an MSR capture record without msr_seq and msr_commit_lsn');
  }
  return { partition: seq, offset: lsn };
}

// Per record stream (a topic's keys, a topic's values): the schema each repeats (schema-prefix.ts).
const prefixes = new SchemaPrefixes();

function parseJson(topic: string, bytes: Buffer, what: 'key' | 'value'): unknown {
  try {
    return prefixes.parse(`${what} ${topic}`, bytes);
  } catch {
    throw new DecodeError('NOT_JSON', `the record ${what} is not JSON`);
  }
}

/** The JSON converter with schemas.enable=true wraps every value as {schema, payload}. */
function unwrap(json: unknown): { schema: ConnectSchema | undefined; payload: unknown } {
  if (!isWrapped(json)) return { schema: undefined, payload: json };
  return { schema: (json.schema as ConnectSchema | null) ?? undefined, payload: json.payload };
}

/** Whether JSON.parse may have rounded a number the decoder keeps: in an image or the position. */
function mayHaveRounded(envelope: Record<string, unknown>): boolean {
  const source = isRecord(envelope.source) ? envelope.source : {};
  return (
    mayBeRounded(envelope.before) ||
    mayBeRounded(envelope.after) ||
    mayBeRounded(source.lsn) ||
    mayBeRounded(source.ts_us) ||
    mayBeRounded(source.txId)
  );
}

/** A number that a double would round, kept as its digits (written into the stored text as they are). */
const literal = (digits: string) => new JsonLiteral(digits);

/** A JSON object (a number kept exactly, JsonLiteral, is a value, not an object). */
function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonLiteral)
  );
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new DecodeError('MISSING_SOURCE', `${what} is missing`);
  return value;
}

function integerText(value: unknown): string | null {
  if (value instanceof JsonLiteral) return /^-?\d+$/.test(value.text) ? value.text : null;
  return typeof value === 'number' && Number.isInteger(value) ? String(value) : null;
}

/** Debezium gives the commit time in ts_us (2.x and later) and always in ts_ms. */
function commitTime(source: Record<string, unknown>): bigint {
  const us = integerText(source.ts_us);
  if (us !== null) return BigInt(us);
  if (typeof source.ts_ms === 'number' && Number.isInteger(source.ts_ms)) return BigInt(source.ts_ms) * 1000n;
  throw new DecodeError('BAD_TIMESTAMP', 'source has neither ts_us nor ts_ms');
}

/**
 * A row image as stored: its known columns decoded and written as JSON text in one pass (the
 * costliest step of decoding, run for two images of every change), and the columns Debezium
 * could not read. The decoded columns as an object only when asked for (keyless rows' digests).
 */
function image(
  schema: ConnectSchema | undefined,
  raw: unknown,
  withRow: boolean,
): { row: { [key: string]: JsonValue } | undefined; text: string; unavailable: string[] } | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new EncodingError('a row image is not an object');
  const columns = raw as Record<string, unknown>;
  const fields = schema ? fieldsOf(schema) : undefined;
  const unavailable: string[] = [];
  const row = withRow ? memberObject() : undefined;
  let text = '{';
  for (const column in columns) {
    if (!Object.hasOwn(columns, column)) continue;
    const value = columns[column];
    if (isUnavailable(value)) {
      unavailable.push(column);
      continue;
    }
    const decoded = fields ? decodeValue(fields.get(column), value) : (value as JsonValue);
    text += `${text.length > 1 ? ',' : ''}${JSON.stringify(column)}:${jsonText(decoded)}`;
    if (row) row[column] = decoded;
  }
  return { row, text: `${text}}`, unavailable };
}

/**
 * A table without a primary key (Debezium sends no record key): its rows are told apart by their
 * images (keyless.ts), so an update or delete needs the before image REPLICA IDENTITY FULL gives.
 */
function keylessImages(
  op: Op,
  before: { [key: string]: JsonValue } | null,
  after: { [key: string]: JsonValue } | null,
): KeylessImages {
  if ((op === 'u' || op === 'd') && before === null) {
    throw new DecodeError(
      'MISSING_KEY',
      'a change of a table without a primary key and without REPLICA IDENTITY FULL: the row it changed cannot be known',
    );
  }
  return { before: before && rowDigest(before), after: after && rowDigest(after) };
}

/** The record key is the primary key: its canonical text (entity-id.ts). */
export function entityId(key: Buffer | null, topic = ''): string {
  if (key === null || key.length === 0)
    throw new DecodeError('MISSING_KEY', 'the record has no key (a table without a primary key?)');
  let { schema, payload } = unwrap(parseJson(topic, key, 'key'));
  if (mayBeRounded(payload)) ({ schema, payload } = unwrap(parseExactly(key.toString('utf8'), literal)));
  if (!isRecord(payload)) return scalarText(decodeValue(schema, payload));
  const columns = schema ? decodeStruct(schema, payload) : (payload as { [key: string]: JsonValue });
  if (Object.keys(columns).length === 0)
    throw new DecodeError('MISSING_KEY', 'the record key has no columns');
  return entityIdOf(columns);
}
