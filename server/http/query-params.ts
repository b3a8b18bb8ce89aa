import { ErrorCode } from '@msr/protocol/codes';
import { TABLE_NAME } from '@msr/protocol/messages';
import { json, type HttpResponse } from './route.js';

/** A query parameter read, or the 400 BAD_MESSAGE answer that says what is wrong with it. */
export type Param<T> = { value: T } | { error: HttpResponse };

/** The 400 BAD_MESSAGE answer saying what is wrong with the request. */
export const badRequest = (message: string): HttpResponse =>
  json(400, { code: ErrorCode.BAD_MESSAGE, message });

const bad = (message: string): { error: HttpResponse } => ({ error: badRequest(message) });

// Times a timestamptz holds and a JavaScript Date can name: from PostgreSQL's first day (4713 BC)
// to Date's last (year 275760). Past them the database refuses the query (an internal error).
const EARLIEST_TIME = -210_866_803_200_000;
const LATEST_TIME = 8_640_000_000_000_000;

/** An epoch-milliseconds time; undefined when absent (the caller knows its default). */
export function timeParam(query: URLSearchParams, name: string): Param<number | undefined> {
  const raw = query.get(name);
  if (raw === null || raw === '') return { value: undefined };
  const value = Number(raw);
  return Number.isFinite(value) && value >= EARLIEST_TIME && value <= LATEST_TIME
    ? { value }
    : bad(`${name}: expected a time in epoch milliseconds from ${EARLIEST_TIME} to ${LATEST_TIME}`);
}

/** A whole number in [min, max], or `fallback` when absent. */
export function countParam(
  query: URLSearchParams,
  name: string,
  fallback: number,
  min: number,
  max: number,
): Param<number> {
  const raw = query.get(name);
  if (raw === null || raw === '') return { value: fallback };
  const value = Number(raw);
  return Number.isInteger(value) && value >= min && value <= max
    ? { value }
    : bad(`${name}: expected a whole number from ${min} to ${max}`);
}

/** `schema.table` names, comma-separated; undefined when absent (every table). */
export function tablesParam(query: URLSearchParams): Param<string[] | undefined> {
  const tables = query
    .get('tables')
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (tables?.some((name) => !TABLE_NAME.test(name))) {
    return bad('tables: expected schema.table names, comma-separated');
  }
  return { value: tables && tables.length > 0 ? tables : undefined };
}
