import type { Pool } from 'pg';
import type { Config } from '../config.js';
import { ACTIVE_SESSION } from '../db/sql-fragments.js';

export interface Availability {
  /** Oldest replayable time (epoch ms), or null while nothing is stored. */
  readonly earliest: number | null;
  /** Newest stored event time (epoch ms), or null while nothing is stored. */
  readonly latest: number | null;
  readonly maxPlaybackRangeDays: number;
  readonly earliestValidTimestamp: number | null;
  readonly activeSessions: number;
  readonly maxActiveSessions: number;
}

export async function readAvailability(pool: Pool, config: Config, now = Date.now()): Promise<Availability> {
  const { rows } = await pool.query<{ first: Date | null; last: Date | null; active: string }>(`
    select (select min(event_timestamp) from msr.cdc_event) as first,
           (select max(event_timestamp) from msr.cdc_event) as last,
           (select count(*) from msr.session where ${ACTIVE_SESSION}) as active`);
  const row = rows[0]!;
  const windowStart = now - config.maxPlaybackRangeDays * 86_400_000;
  const earliest =
    row.first === null
      ? null
      : Math.max(row.first.getTime(), windowStart, config.earliestValidTimestamp ?? -Infinity);
  return {
    earliest,
    latest: row.last?.getTime() ?? null,
    maxPlaybackRangeDays: config.maxPlaybackRangeDays,
    earliestValidTimestamp: config.earliestValidTimestamp ?? null,
    activeSessions: Number(row.active),
    maxActiveSessions: config.maxActiveSessions,
  };
}
