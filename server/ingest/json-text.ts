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

/**
 * An empty object for members named by data (columns, key fields). It has no prototype, so that a
 * member named "__proto__" is set as a key like any other instead of replacing the prototype.
 */
export function memberObject(): { [key: string]: JsonValue } {
  return Object.create(null) as { [key: string]: JsonValue };
}

// Written as loops over the members rather than with Object.entries and map: every row image of
// every change passes through here, and the intermediate arrays were a tenth of decoding.
export function jsonText(value: JsonValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      // JSON has no NaN or Infinity; Debezium sends them for special float values.
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
  }
  if (value instanceof JsonLiteral) return value.text;
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) text += (i > 0 ? ',' : '') + jsonText(value[i]!);
    return `${text}]`;
  }
  let text = '{';
  let first = true;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    text += `${first ? '' : ','}${JSON.stringify(key)}:${jsonText(value[key]!)}`;
    first = false;
  }
  return `${text}}`;
}
