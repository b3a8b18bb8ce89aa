import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from '../db/transaction.js';
import { appendDemoEvents, applyDemoEvents } from './seed.js';

const TICK_MS = 1_000;
/** After a long stop, the generator fills at most this much of the gap instead of days of catch-up. */
const MAX_BACKFILL_MS = 3_600_000;

/**
 * Keeps the demo world moving: every second, the demo events that have come due are applied to
 * the source tables (for the built-in capture to stream, `captured`), or else appended to
 * msr.cdc_event directly.
 */
export class DemoLiveGenerator {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private last = new Date(0);

  constructor(
    private readonly pool: Pool,
    private readonly epoch: Date,
    private readonly log: Logger,
    private readonly captured: boolean,
  ) {}

  async start(): Promise<void> {
    const { rows } = await this.pool.query<{ last: Date | null }>(
      `select max(event_timestamp) as last from msr.cdc_event where source = 'demo'`,
    );
    const floor = Date.now() - MAX_BACKFILL_MS;
    this.last = new Date(Math.max(rows[0]?.last?.getTime() ?? floor, floor));
    this.timer = setInterval(() => {
      this.running = this.running.then(() => this.tick());
    }, TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async tick(): Promise<void> {
    const now = new Date();
    try {
      const client = await this.pool.connect();
      try {
        // One transaction per window, so a failed tick leaves nothing behind to duplicate.
        const write = this.captured ? applyDemoEvents : appendDemoEvents;
        await inTransaction(client, (c) => write(c, this.last, now, this.epoch));
        this.last = now;
      } finally {
        client.release();
      }
    } catch (err) {
      // The database may be briefly away; the next tick covers the same window again.
      this.log.warn({ err }, 'demo live generator could not append events');
    }
  }
}
