/**
 * Replay positions inside the server are whole microseconds since the epoch (what PostgreSQL
 * stores), so window bounds are exact; the wire carries milliseconds (fractions allowed).
 */
export type Micros = number;

export const usToMs = (us: Micros) => us / 1000;
export const msToUs = (ms: number): Micros => Math.round(ms * 1000);

/**
 * SQL for the timestamptz at a bigint microseconds parameter or column: no float seconds, and
 * exact for every replay position (a number of microseconds, so before 2^53: year 2255). The
 * ingest stores any time (sql-fragments.ts timestampAtMicros).
 */
export const sqlAt = (param: string) => `timestamptz 'epoch' + ${param}::bigint * interval '1 microsecond'`;

/** SQL for a timestamptz column as microseconds, as text (pg would round a float8). */
export const sqlMicros = (column: string) => `(extract(epoch from ${column}) * 1000000)::bigint::text`;
