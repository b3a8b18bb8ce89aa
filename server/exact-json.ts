import { isSafeNumber, parse } from 'lossless-json';

// JSON.parse rounds an integer past 2^53 to the nearest double. Debezium writes int8 columns as
// plain JSON numbers, and jsonb holds any number exactly: a bigint id of 2^53 + 1 would become
// 2^53, and two such rows one entity. JSON.parse stays the fast path; a document in which it may
// have rounded a number is parsed again here, each number a double would not hold exactly handed
// to the caller's `keep` as its text.

/** Parses JSON, passing each number a double would not hold exactly to `keep` as its text. */
export function parseExactly(text: string, keep: (digits: string) => unknown): unknown {
  return parse(text, undefined, {
    parseNumber: (digits) => (isSafeNumber(digits) ? Number(digits) : keep(digits)),
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
