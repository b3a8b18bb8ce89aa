/**
 * JSON values as ingest stores them. Numbers that a JavaScript double would round (Debezium's
 * precise decimals) and JSON documents taken verbatim from a json/jsonb column travel as
 * JsonLiteral, written into the text unchanged, so PostgreSQL's jsonb keeps every digit.
 */
export class JsonLiteral {
  constructor(readonly text: string) {}
}

export type JsonValue =
  null | boolean | number | string | JsonLiteral | JsonValue[] | { [key: string]: JsonValue };

export function jsonText(value: JsonValue): string {
  if (value instanceof JsonLiteral) return value.text;
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`);
    return `{${members.join(',')}}`;
  }
  // JSON has no NaN or Infinity; Debezium sends them for special float values.
  if (typeof value === 'number' && !Number.isFinite(value)) return 'null';
  return JSON.stringify(value);
}
