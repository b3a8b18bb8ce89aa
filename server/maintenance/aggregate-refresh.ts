import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Dialect } from '../db/dialect.js';
import type { Metrics } from '../metrics.js';
import { AdvisoryLock } from '../db/locks.js';
import { REFRESH_AGGREGATE } from '../db/sql-fragments.js';

export interface AggregateStatus {
  /** Buckets before this time are materialized (epoch ms; null before the first refresh). */
  readonly watermark: number | null;
  readonly lastRunAt: number | null;
  readonly lastError: string | undefined;
  readonly consecutiveFailures: number;
  /** TimescaleDB's own refresh policy, when its last run failed (its job error, as TimescaleDB logged it). */
  readonly policyError: string | undefined;
}

/**
 * Keeps entity_last_states materialized close to now, so a keyframe's raw tail stays short
 * whatever the time of day. Plain PostgreSQL has no scheduler of its own; on TimescaleDB the
 * aggregate's refresh policy should do it, but its background jobs can fail (on PostgreSQL 15.20
 * every TimescaleDB 2.22.1 job fails with "cannot drop portal") and the raw tail then grows for
 * good, so MSR refreshes on both dialects; a refresh with nothing new to do costs a few ms.
 */
export class AggregateRefresh {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private state: AggregateStatus = {
    watermark: null,
    lastRunAt: null,
    lastError: undefined,
    consecutiveFailures: 0,
    policyError: undefined,
  };

  constructor(
    private readonly pool: Pool,
    private readonly dialect: Dialect,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.run(), this.intervalMs);
    this.timer.unref();
  }

  get status(): AggregateStatus {
    return this.state;
  }

  /** One refresh unless one is running (then that one); never throws. */
  run(): Promise<void> {
    this.running ??= this.refresh().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async refresh(): Promise<void> {
    const started = performance.now();
    const client = await this.pool.connect().catch((err: unknown) => err as Error);
    if (client instanceof Error) return this.failed(client);
    let locked = false;
    let failure: Error | undefined;
    try {
      locked = (
        await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [
          AdvisoryLock.AGGREGATE_REFRESH,
        ])
      ).rows[0]!.ok;
      if (locked) {
        await client.query(REFRESH_AGGREGATE);
        this.metrics.aggregateRefreshSeconds.observe((performance.now() - started) / 1000);
      }
      const { rows } = await client.query<{ watermark: Date | null }>(
        `select nullif(msr.entity_states_watermark(), '-infinity') as watermark`,
      );
      const watermark = rows[0]?.watermark?.getTime() ?? null;
      if (watermark !== null) this.metrics.aggregateWatermark.set(watermark / 1000);
      const previousPolicyError = this.state.policyError;
      this.state = {
        watermark,
        lastRunAt: Date.now(),
        lastError: undefined,
        consecutiveFailures: 0,
        policyError: this.dialect === 'timescaledb' ? await policyError(client) : undefined,
      };
      if (this.state.policyError && this.state.policyError !== previousPolicyError) {
        this.log.warn(
          { policyError: this.state.policyError },
          "TimescaleDB's refresh policy for entity_last_states fails; MSR refreshes it itself",
        );
      }
    } catch (err) {
      failure = err as Error;
      this.failed(failure);
    } finally {
      if (locked)
        await client
          .query('select pg_advisory_unlock($1)', [AdvisoryLock.AGGREGATE_REFRESH])
          .catch(() => undefined);
      client.release(failure);
    }
  }

  private failed(err: Error): void {
    this.state = {
      ...this.state,
      lastRunAt: Date.now(),
      lastError: err.message,
      consecutiveFailures: this.state.consecutiveFailures + 1,
    };
    this.log.warn({ err }, 'entity_last_states refresh failed; keyframes read a longer raw tail meanwhile');
  }
}

async function policyError(client: { query: Pool['query'] }): Promise<string | undefined> {
  const { rows } = await client.query<{ job_id: number; err_message: string | null }>(
    `select s.job_id,
            (select e.err_message from timescaledb_information.job_errors e
              where e.job_id = s.job_id order by e.finish_time desc limit 1) as err_message
       from timescaledb_information.job_stats s
       join timescaledb_information.jobs j using (job_id)
      where j.proc_name = 'policy_refresh_continuous_aggregate' and s.last_run_status = 'Failed'`,
  );
  const row = rows[0];
  return row ? `job ${row.job_id}: ${row.err_message ?? 'failed'}` : undefined;
}
