import { parse as parseArray } from 'postgres-array';
import { JsonLiteral, type JsonValue } from '../ingest/json-text.js';

/**
 * Turns a column value as pgoutput sends it (PostgreSQL's text output, in a session with
 * DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres, extra_float_digits=3) into the JSON that the
 * Debezium path stores for it, so both ways of capture give the same `after`: numbers and precise
 * decimals as exact JSON numbers, json/jsonb as documents, dates and times as ISO text
 * (timestamptz in UTC with six fraction digits and Z, as Debezium's ZonedTimestamp), bytea as base64 (Debezium's default
 * binary.handling.mode), intervals as microseconds (its default interval.handling.mode), arrays
 * element by element; anything else (text, uuid, enums, inet, ...) as its text.
 */

/** What the value conversion needs to know of a column's type (from the source's pg_type). */
export interface ColumnType {
  /** pg_type.typcategory: B boolean, N numeric, D date/time, A array, U user-defined, ... */
  readonly category: string;
  /** The type's own name (a domain: its base type's), e.g. int8, numeric, timestamptz, jsonb. */
  readonly name: string;
  /** For an array, its element type. */
  readonly element?: ColumnType;
}

export function columnValue(type: ColumnType, text: string | null): JsonValue {
  if (text === null) return null;
  if (type.element) {
    const element = type.element;
    return nest(parseArray(text, (item) => columnValue(element, item)));
  }
  switch (type.name) {
    case 'bool':
      return text === 't';
    case 'int2':
    case 'int4':
    case 'int8':
    case 'oid':
      return new JsonLiteral(text);
    case 'float4':
    case 'float8':
      return /^-?(Infinity|NaN)$/.test(text) ? null : new JsonLiteral(text);
    case 'numeric':
      return text === 'NaN' || /Infinity/.test(text) ? text : new JsonLiteral(text);
    case 'json':
    case 'jsonb':
      return new JsonLiteral(text);
    case 'timestamp':
      return text.replace(' ', 'T');
    case 'timestamptz':
      return zoned(text);
    case 'timetz':
      return text.replace(/\+00$/, 'Z');
    case 'bytea':
      return Buffer.from(text.slice(2), 'hex').toString('base64');
    case 'interval':
      return intervalMicros(text);
    default:
      return text;
  }
}

/** postgres-array gives nested arrays of converted elements (null elements stay null). */
function nest(items: unknown[]): JsonValue {
  return items.map((item) => (Array.isArray(item) ? nest(item) : (item as JsonValue)));
}

/**
 * '2026-11-24 10:30:15.5+00' (TimeZone=UTC) -> '2026-11-24T10:30:15.500000Z': Debezium's
 * ZonedTimestamp always writes six fraction digits for a timestamptz.
 */
function zoned(text: string): string {
  if (text === 'infinity' || text === '-infinity') return text;
  const match = /^(.*?)(?:\.(\d+))?\+00$/.exec(text.replace(' ', 'T'));
  if (!match) return text;
  return `${match[1]}.${(match[2] ?? '').padEnd(6, '0')}Z`;
}

const MICROS = { year: 365.25 * 86_400e6, mon: (365.25 / 12) * 86_400e6, day: 86_400e6 } as const;

/**
 * IntervalStyle=postgres text ('1 year 2 mons 3 days 04:05:06.5', '-00:00:01') as microseconds,
 * months counted as Debezium counts them (365.25 / 12 days).
 */
function intervalMicros(text: string): number {
  let micros = 0;
  for (const [, amount, unit] of text.matchAll(/(-?\d+) (year|mon|day)s?/g)) {
    micros += Number(amount) * MICROS[unit as keyof typeof MICROS];
  }
  const clock = /(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d+))?/.exec(text);
  if (clock) {
    const [, sign, h, m, s, fraction = ''] = clock;
    const value =
      (Number(h) * 3600 + Number(m) * 60 + Number(s)) * 1e6 + Number(fraction.padEnd(6, '0').slice(0, 6));
    micros += sign === '-' ? -value : value;
  }
  return Math.round(micros);
}
