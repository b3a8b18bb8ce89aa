import { MSR_CONNECTOR } from '../ingest/debezium.js';
import { UNAVAILABLE, type ConnectSchema } from '../ingest/encodings.js';
import { jsonText } from '../ingest/json-text.js';
import type { SourceTable } from './catalog.js';
import type { CapturedChange, Image } from './changes.js';
import type { ColumnType } from './values.js';

/**
 * A captured change as a Kafka record in Debezium's JSON envelope (JSON converter with schemas):
 * key = the primary key's columns, value = {schema, payload: {before, after, source, op, ts_ms}},
 * on the topic Debezium would use (`<source>.<schema>.<table>`). MSR's own ingest reads these
 * records as it reads Debezium's and stores the same rows the capture would store directly:
 * - values whose digits a JavaScript double would lose (numeric, int8) and documents (json, jsonb,
 *   arrays) travel as io.debezium.data.Json text, so every digit survives the consumer's parse;
 * - dates and times travel as the ISO text the direct path stores;
 * - `source` carries, besides Debezium's fields, the change's place in its transaction
 *   (`msr_seq`) and its commit LSN (`msr_commit_lsn`): the coordinates the direct path stores, so
 *   that a change produced twice (a crash between the produce and the slot's confirmation) is
 *   stored once.
 */
export interface CaptureRecord {
  readonly topic: string;
  readonly key: Buffer | null;
  readonly value: Buffer;
}

const JSON_TEXT: ConnectSchema = { type: 'string', name: 'io.debezium.data.Json', optional: true };

/** How a column's values travel: a Connect type, and whether the value is sent as JSON text. */
function columnSchema(type: ColumnType): { schema: ConnectSchema; asJson: boolean } {
  if (type.element) return { schema: JSON_TEXT, asJson: true };
  switch (type.name) {
    case 'bool':
      return { schema: { type: 'boolean', optional: true }, asJson: false };
    case 'int2':
      return { schema: { type: 'int16', optional: true }, asJson: false };
    case 'int4':
      return { schema: { type: 'int32', optional: true }, asJson: false };
    case 'oid':
    case 'interval':
      return { schema: { type: 'int64', optional: true }, asJson: false };
    case 'float4':
    case 'float8':
      return { schema: { type: 'double', optional: true }, asJson: false };
    case 'int8':
    case 'numeric':
    case 'json':
    case 'jsonb':
      return { schema: JSON_TEXT, asJson: true };
    case 'timestamptz':
      return {
        schema: { type: 'string', name: 'io.debezium.time.ZonedTimestamp', optional: true },
        asJson: false,
      };
    default:
      return { schema: { type: 'string', optional: true }, asJson: false };
  }
}

const field = (name: string, type: string, optional = false): ConnectSchema => ({
  type,
  field: name,
  optional,
});
const SOURCE_FIELDS = [
  field('version', 'string'),
  field('connector', 'string'),
  field('name', 'string'),
  field('ts_ms', 'int64'),
  field('ts_us', 'int64', true),
  field('snapshot', 'string', true),
  field('schema', 'string'),
  field('table', 'string'),
  field('txId', 'int64', true),
  field('lsn', 'int64', true),
  field('msr_seq', 'int32'),
  field('msr_commit_lsn', 'string'),
];

interface TableEncoding {
  /** The value's schema as JSON text, made once per table shape. */
  readonly valueSchema: string;
  readonly keySchema: string;
  readonly asJson: ReadonlySet<string>;
}

const encodings = new WeakMap<SourceTable, TableEncoding>();

function encodingOf(table: SourceTable): TableEncoding {
  const known = encodings.get(table);
  if (known) return known;
  const asJson = new Set<string>();
  const fields = [...table.columns].map(([column, type]) => {
    const { schema, asJson: json } = columnSchema(type);
    if (json) asJson.add(column);
    return { ...schema, field: column };
  });
  const prefix = `${table.schema}.${table.name}`;
  const row = (field: string): ConnectSchema => ({
    type: 'struct',
    optional: true,
    field,
    name: `${prefix}.Value`,
    fields,
  });
  const source: ConnectSchema = {
    type: 'struct',
    field: 'source',
    name: 'io.debezium.connector.msr.Source',
    fields: SOURCE_FIELDS,
  };
  const valueSchema: ConnectSchema = {
    type: 'struct',
    name: `${prefix}.Envelope`,
    fields: [row('before'), row('after'), source, field('op', 'string'), field('ts_ms', 'int64', true)],
  };
  const keySchema: ConnectSchema = {
    type: 'struct',
    name: `${prefix}.Key`,
    fields: fields.filter((f) => table.key.includes(f.field!)),
  };
  const encoding = { valueSchema: JSON.stringify(valueSchema), keySchema: JSON.stringify(keySchema), asJson };
  encodings.set(table, encoding);
  return encoding;
}

/** A row image as payload JSON text: JSON-text columns quoted, unsent values as Debezium's placeholder. */
function imageText(image: Image | null, asJson: ReadonlySet<string>): string {
  if (!image) return 'null';
  const members: string[] = [];
  for (const [column, value] of Object.entries(image.row)) {
    const text = asJson.has(column) && value !== null ? JSON.stringify(jsonText(value)) : jsonText(value);
    members.push(`${JSON.stringify(column)}:${text}`);
  }
  for (const column of image.unavailable)
    members.push(`${JSON.stringify(column)}:${JSON.stringify(UNAVAILABLE)}`);
  return `{${members.join(',')}}`;
}

export function captureRecord(change: CapturedChange): CaptureRecord {
  const { table, commit, seq, before, after, key } = change.capture;
  const encoding = encodingOf(table);
  const event = change.event;
  const tsMs = Number(commit.timeUs / 1000n);
  const source = {
    version: 'msr',
    connector: MSR_CONNECTOR,
    name: commit.source,
    ts_ms: tsMs,
    ts_us: Number(commit.timeUs),
    snapshot: event.op === 'r' ? 'true' : 'false',
    schema: table.schema,
    table: table.name,
    txId: commit.xid === null ? null : Number(commit.xid),
    lsn: event.lsn === null ? null : Number(event.lsn),
    msr_seq: seq,
    msr_commit_lsn: commit.commitLsn.toString(),
  };
  const payload =
    `{"before":${imageText(before, encoding.asJson)},"after":${imageText(after, encoding.asJson)},` +
    `"source":${JSON.stringify(source)},"op":"${event.op}","ts_ms":${tsMs}}`;
  const keyPayload = key && imageText({ row: key, unavailable: [] }, encoding.asJson);
  return {
    topic: change.topic,
    key: keyPayload ? Buffer.from(`{"schema":${encoding.keySchema},"payload":${keyPayload}}`) : null,
    value: Buffer.from(`{"schema":${encoding.valueSchema},"payload":${payload}}`),
  };
}
