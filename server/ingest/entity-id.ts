import { jsonText, type JsonValue } from './json-text.js';

/**
 * The canonical text of a primary key, the same whichever way a change arrived (Debezium's record
 * key or the built-in capture). One column: its value as text ("42", "abc"). Several: a JSON
 * object with the columns in name order, so the same row always gets the same id.
 */
export function entityIdOf(key: { readonly [column: string]: JsonValue }): string {
  const names = Object.keys(key).sort();
  if (names.length === 1) return scalarText(key[names[0]!]!);
  return jsonText(Object.fromEntries(names.map((n) => [n, key[n]!])));
}

export function scalarText(value: JsonValue): string {
  return typeof value === 'string' ? value : jsonText(value);
}
