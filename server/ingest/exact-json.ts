import { isSafeNumber, parse } from 'lossless-json';
import { JsonLiteral } from './json-text.js';

// JSON.parse rounds an integer past 2^53 to the nearest double, and Debezium writes int8 columns
// as plain JSON numbers: a bigint id of 2^53 + 1 would be stored as 2^53, and two such rows would
// become one entity. JSON.parse stays the fast path; a record whose row images or key hold a
// number it may have rounded is parsed again here, with every number a double would not hold
// exactly kept as its text.

/** Parses JSON keeping each number that a double would not hold exactly as a JsonLiteral. */
export function parseExactly(text: string): unknown {
  return parse(text, undefined, {
    parseNumber: (digits) => (isSafeNumber(digits) ? Number(digits) : new JsonLiteral(digits)),
    // As JSON.parse: the last of duplicate keys wins.
    onDuplicateKey: ({ newValue }) => newValue,
  });
}

/** Whether a value from JSON.parse holds a number it may have rounded: an integer past 2^53. */
export function mayBeRounded(value: unknown): boolean {
  if (typeof value === 'number') return Number.isInteger(value) && !Number.isSafeInteger(value);
  if (typeof value !== 'object' || value === null) return false;
  for (const key in value) {
    if (Object.hasOwn(value, key) && mayBeRounded((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}
