import { Cron } from 'croner';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { rotate, type RotationOptions, type RotationResult } from './rotation.js';

export interface MaintenanceOptions extends RotationOptions {
  /** After a failed run, the next attempt comes this much later (default 5 minutes). */
  readonly retryMs?: number;
  /** The bootstrap run waits for this (the demo seed: both need the event table's locks). */
  readonly after?: Promise<unknown>;
}

/**
 * Runs retention and snapshot rotation on DATA_RETENTION_CRON_EXPRESSION, once at start
 * (bootstrap), and again after a failure; one run at a time in this process, one server at a
 * time across processes (rotate's advisory lock).
 */
export class Maintenance {
  private cron: Cron | undefined;
  private running: Promise<RotationResult | undefined> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The bootstrap run has finished (well or not). */
  settled = false;

  constructor(
    private readonly pool: Pool,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: MaintenanceOptions = {},
  ) {}

  start(): void {
    this.cron = new Cron(this.config.retentionCron, { protect: true }, () => void this.run('scheduled'));
    void (this.options.after ?? Promise.resolve()).finally(() => void this.run('bootstrap'));
  }

  /** Runs now unless a run is in progress (then waits for that one). Never throws. */
  run(reason: 'bootstrap' | 'scheduled' | 'retry' | 'manual'): Promise<RotationResult | undefined> {
    if (this.running) return this.running;
    if (this.stopped) return Promise.resolve(undefined);
    clearTimeout(this.retry);
    this.log.info({ reason }, 'maintenance starting');
    this.running = rotate(this.pool, this.log, this.metrics, this.options)
      .catch(() => {
        if (!this.stopped) {
          this.retry = setTimeout(() => void this.run('retry'), this.options.retryMs ?? 300_000);
          this.retry.unref();
        }
        return undefined;
      })
      .finally(() => {
        this.running = undefined;
        this.settled = true;
      });
    return this.running;
  }

  /** The next scheduled run (for /readyz and operators). */
  get nextRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cron?.stop();
    clearTimeout(this.retry);
    await this.running;
  }
}
