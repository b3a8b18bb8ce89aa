import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { FailedRecord } from './change.js';

const MINUTE = 60_000;

interface Tally {
  readonly topic: string;
  readonly reason: string;
  count: number;
  /** Refused since the last log line. */
  unlogged: number;
  lastAt: number;
  loggedAt: number;
  detail: string;
}

/**
 * Records that went to msr.ingest_error, told to operators once per table (topic) and reason per
 * minute, with a count and one example, however many there are; /readyz lists the recent ones.
 */
export class Refusals {
  private readonly tallies = new Map<string, Tally>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  note(failures: readonly FailedRecord[], now = Date.now()): void {
    for (const f of failures) {
      this.metrics.ingestErrors.inc({ topic: f.topic, reason: f.reason });
      const key = `${f.topic}\u0000${f.reason}`;
      const tally = this.tallies.get(key) ?? {
        topic: f.topic,
        reason: f.reason,
        count: 0,
        unlogged: 0,
        lastAt: 0,
        loggedAt: 0,
        detail: f.detail,
      };
      tally.count++;
      tally.unlogged++;
      tally.lastAt = now;
      tally.detail = f.detail;
      this.tallies.set(key, tally);
      if (now - tally.loggedAt >= MINUTE) {
        this.log.warn(
          {
            topic: f.topic,
            reason: f.reason,
            records: tally.unlogged,
            example: { offset: f.offset, detail: f.detail },
          },
          'records stored in msr.ingest_error',
        );
        tally.loggedAt = now;
        tally.unlogged = 0;
      }
    }
  }

  /** Tables with records refused in the last 10 minutes, for /readyz. */
  recent(now = Date.now()): string[] {
    return [...this.tallies.values()]
      .filter((t) => now - t.lastAt < 10 * MINUTE)
      .map((t) => `${t.topic}: ${t.count} records refused (${t.reason}): ${t.detail}`);
  }
}
