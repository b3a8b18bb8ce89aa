import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The server's Prometheus metrics, one registry per app (tests run several apps in one process).
 * Parts get the instruments they update; /metrics renders the registry.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly ingestEvents = new Counter({
    name: 'msr_ingest_events_total',
    help: 'Change events stored from Kafka (redeliveries included), by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly ingestSkipped = new Counter({
    name: 'msr_ingest_skipped_total',
    help: 'Kafka records skipped on purpose (tombstones, heartbeats, transaction markers), by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly ingestErrors = new Counter({
    name: 'msr_ingest_errors_total',
    help: 'Kafka records that could not be stored as events and went to msr.ingest_error, by reason',
    labelNames: ['topic', 'reason'] as const,
    registers: [this.registry],
  });

  readonly ingestBatchSeconds = new Histogram({
    name: 'msr_ingest_batch_seconds',
    help: 'Time to store one Kafka batch in the database',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly ingestRetries = new Counter({
    name: 'msr_ingest_write_retries_total',
    help: 'Batch writes retried because the database was unavailable',
    registers: [this.registry],
  });

  readonly ingestLag = new Gauge({
    name: 'msr_ingest_consumer_lag',
    help: 'Records in the partition after the last one stored (high watermark minus next offset)',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'msr_' });
  }
}
