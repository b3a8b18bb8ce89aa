import { JsonLiteral, memberObject, type JsonValue } from './json-text.js';

/**
 * Turns a column value as Debezium's JSON converter wrote it back into the JSON a user expects,
 * guided by the Kafka Connect schema when the record embeds one: dates and times become ISO text,
 * precise decimals exact numbers, json/jsonb columns documents. Without a schema a value is taken
 * as it came (configure decimal.handling.mode=string or double for exact numerics then).
 */

export interface ConnectSchema {
  readonly type: string;
  readonly name?: string;
  readonly optional?: boolean;
  readonly field?: string;
  readonly parameters?: Readonly<Record<string, string>>;
  readonly fields?: readonly ConnectSchema[];
  readonly items?: ConnectSchema;
  readonly values?: ConnectSchema;
}

export class EncodingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EncodingError';
  }
}

/** Debezium's unavailable.value.placeholder default, for values it could not read (TOAST). */
export const UNAVAILABLE = '__debezium_unavailable_value';
const UNAVAILABLE_BYTES = Buffer.from(UNAVAILABLE).toString('base64');

export function isUnavailable(raw: unknown): boolean {
  if (raw === UNAVAILABLE || raw === UNAVAILABLE_BYTES) return true;
  return Array.isArray(raw) && raw.length === 1 && isUnavailable(raw[0]);
}

export function decodeValue(schema: ConnectSchema | undefined, raw: unknown): JsonValue {
  if (raw === null || raw === undefined) return null;
  if (!schema) return raw as JsonValue;
  switch (schema.name) {
    case 'org.apache.kafka.connect.data.Decimal':
      return decimal(bytes(raw), Number(schema.parameters?.scale ?? 0));
    case 'io.debezium.data.VariableScaleDecimal': {
      const { scale, value } = raw as { scale?: unknown; value?: unknown };
      return decimal(bytes(value), Number(scale));
    }
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return isoDate(integer(raw) * 86_400_000);
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return isoLocalTimestamp(bigInteger(raw) * 1000n);
    case 'io.debezium.time.MicroTimestamp':
      return isoLocalTimestamp(bigInteger(raw));
    case 'io.debezium.time.NanoTimestamp':
      return isoLocalTimestamp(bigInteger(raw) / 1000n);
    case 'io.debezium.time.Time':
    case 'org.apache.kafka.connect.data.Time':
      return isoTime(bigInteger(raw) * 1000n);
    case 'io.debezium.time.MicroTime':
      return isoTime(bigInteger(raw));
    case 'io.debezium.time.NanoTime':
      return isoTime(bigInteger(raw) / 1000n);
    case 'io.debezium.data.Json':
      return jsonDocument(raw);
    default:
      break;
  }
  switch (schema.type) {
    case 'struct':
      return decodeStruct(schema, raw);
    case 'array': {
      if (!Array.isArray(raw)) throw new EncodingError(`expected an array for ${label(schema)}`);
      return raw.map((item) => decodeValue(schema.items, item));
    }
    case 'map': {
      if (typeof raw !== 'object') throw new EncodingError(`expected an object for ${label(schema)}`);
      return Object.fromEntries(
        Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, decodeValue(schema.values, v)]),
      );
    }
    default:
      return raw as JsonValue;
  }
}

export function decodeStruct(schema: ConnectSchema, raw: unknown): { [key: string]: JsonValue } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new EncodingError(`expected an object for ${label(schema)}`);
  }
  const byName = fieldsOf(schema);
  const out = memberObject();
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    out[key] = decodeValue(byName.get(key), value);
  }
  return out;
}

// Records of a topic share their parsed schema object (schema-prefix.ts), so a struct's fields
// by name are worked out once per schema, not once per value.
const fieldsBySchema = new WeakMap<ConnectSchema, ReadonlyMap<string | undefined, ConnectSchema>>();

/** A struct schema's fields by name. */
export function fieldsOf(schema: ConnectSchema): ReadonlyMap<string | undefined, ConnectSchema> {
  let fields = fieldsBySchema.get(schema);
  if (!fields) {
    fields = new Map((schema.fields ?? []).map((f) => [f.field, f]));
    fieldsBySchema.set(schema, fields);
  }
  return fields;
}

const label = (schema: ConnectSchema) => schema.field ?? schema.name ?? schema.type;

function integer(raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw))
    throw new EncodingError(`expected an integer, got ${String(raw)}`);
  return raw;
}

/** An integer that may be past 2^53 (kept as text by exact-json.ts), as a bigint. */
function bigInteger(raw: unknown): bigint {
  if (raw instanceof JsonLiteral && /^-?\d+$/.test(raw.text)) return BigInt(raw.text);
  return BigInt(integer(raw));
}

function bytes(raw: unknown): Buffer {
  if (typeof raw !== 'string') throw new EncodingError('expected base64 bytes for a decimal');
  return Buffer.from(raw, 'base64');
}

/** A big-endian two's complement unscaled integer and a scale, as exact decimal text. */
export function decimal(unscaled: Buffer, scale: number): JsonLiteral {
  if (!Number.isInteger(scale) || scale < 0) throw new EncodingError(`bad decimal scale ${scale}`);
  if (unscaled.length === 0) return new JsonLiteral('0');
  let n: bigint | number;
  if (unscaled.length <= 6) {
    n = unscaled.readIntBE(0, unscaled.length); // exact in a double: no BigInt for the usual sizes
  } else {
    n = BigInt(`0x${unscaled.toString('hex')}`);
    if (unscaled[0]! & 0x80) n -= 1n << BigInt(unscaled.length * 8);
  }
  const negative = n < 0;
  const digits = (negative ? -n : n).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale > 0 ? `.${digits.slice(digits.length - scale)}` : '';
  return new JsonLiteral(`${negative ? '-' : ''}${whole}${fraction}`);
}

function jsonDocument(raw: unknown): JsonValue {
  if (typeof raw !== 'string') return raw as JsonValue;
  try {
    JSON.parse(raw);
  } catch {
    throw new EncodingError('a json column holds text that is not JSON');
  }
  return new JsonLiteral(raw);
}

const pad = (n: bigint | number, width: number) => String(n).padStart(width, '0');

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** As PostgreSQL writes a timestamp without time zone into JSON: fraction only when present. */
function isoLocalTimestamp(us: bigint): string {
  const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n);
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) throw new EncodingError(`timestamp out of range: ${us} us`);
  const micros = ((us % 1_000_000n) + 1_000_000n) % 1_000_000n;
  return `${date.toISOString().slice(0, 19)}${fraction(micros)}`;
}

function isoTime(us: bigint): string {
  const seconds = us / 1_000_000n;
  const hh = seconds / 3600n;
  const mm = (seconds / 60n) % 60n;
  const ss = seconds % 60n;
  return `${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}${fraction(us % 1_000_000n)}`;
}

function fraction(micros: bigint): string {
  return micros === 0n ? '' : `.${pad(micros, 6).replace(/0+$/, '')}`;
}
