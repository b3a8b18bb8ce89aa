import type { Logger } from 'pino';
import type { Gauge } from 'prom-client';

/** Records waiting after the group's committed offset, per topic partition. */
export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  readonly lag: number;
}

/**
 * The consumer group's lag as last polled, and whether that poll is current: a poll that fails
 * leaves the lag unknown (no figure from before the failure is reported as if it were now), says
 * so once in the log, and again when polling works.
 */
export class LagWatch {
  private total: number | undefined;
  private failure: { since: Date; reason: string } | undefined;
  private stopped = false;

  constructor(
    private readonly poll: () => Promise<readonly PartitionLag[]>,
    private readonly gauge: Gauge<'topic' | 'partition'>,
    private readonly log: Logger,
  ) {}

  async refresh(): Promise<void> {
    if (this.stopped) return;
    try {
      const lags = await this.poll();
      if (this.stopped) return;
      this.gauge.reset();
      for (const { topic, partition, lag } of lags)
        this.gauge.set({ topic, partition: String(partition) }, lag);
      this.total = lags.reduce((sum, p) => sum + p.lag, 0);
      if (this.failure) this.log.info({ unknownSince: this.failure.since }, 'ingest lag known again');
      this.failure = undefined;
    } catch (err) {
      // A poll cut short by stop() is no news about Kafka.
      if (this.stopped) return;
      this.total = undefined;
      this.gauge.reset();
      if (!this.failure) {
        this.failure = { since: new Date(), reason: (err as Error).message };
        this.log.warn({ err }, 'could not poll the ingest lag; it is unknown until a poll works');
      }
    }
  }

  /** No more polls; one still running ends without a word. */
  stop(): void {
    this.stopped = true;
  }

  /** A batch just committed: its partition's lag as the batch saw it. */
  noteBatch(topic: string, partition: number, lag: number): void {
    this.gauge.set({ topic, partition: String(partition) }, lag);
  }

  get lag(): number | undefined {
    return this.total;
  }

  /** Why the lag is unknown, for readiness; undefined while polls work. */
  get unknown(): string | undefined {
    return this.failure && `lag unknown since ${this.failure.since.toISOString()}: ${this.failure.reason}`;
  }
}
