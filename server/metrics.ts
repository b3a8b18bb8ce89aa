import type { Pool } from 'pg';
import type { ReplicaMetrics } from './db/replicas.js';
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

  readonly maintenanceRuns = new Counter({
    name: 'msr_maintenance_runs_total',
    help: 'Maintenance runs (aggregate refresh, snapshot rotation, retention), by result: ok, failed, skipped',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly maintenanceSeconds = new Histogram({
    name: 'msr_maintenance_seconds',
    help: 'Duration of successful maintenance runs',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900],
    registers: [this.registry],
  });

  readonly replayReads = new Counter({
    name: 'msr_replay_reads_total',
    help: 'Replay reads (keyframes, frame windows) by the server they went to: primary or a replica',
    labelNames: ['server'] as const,
    registers: [this.registry],
  });

  readonly liveTailReads = new Counter({
    name: 'msr_live_tail_reads_total',
    help: "Reads of the server's live tail, which feeds every live-follow session near the edge",
    registers: [this.registry],
  });

  readonly liveTailRows = new Counter({
    name: 'msr_live_tail_rows_total',
    help: 'Rows the live tail read: at the edge, and late ones (only ids it has not read are asked for)',
    labelNames: ['read'] as const,
    registers: [this.registry],
  });

  readonly liveEdgeChecks = new Counter({
    name: 'msr_live_edge_checks_total',
    help: 'Late-row checks a live session made with its own query (off the live tail)',
    registers: [this.registry],
  });

  readonly replicaLag = new Gauge({
    name: 'msr_replica_lag_seconds',
    help: "How far a replica's data is behind the primary, by replica",
    labelNames: ['replica'] as const,
    registers: [this.registry],
  });

  readonly replicaInRotation = new Gauge({
    name: 'msr_replica_in_rotation',
    help: '1 while a replica serves replay reads, 0 while it is out (unreachable, not a standby, or too far behind)',
    labelNames: ['replica'] as const,
    registers: [this.registry],
  });

  /** The replica instruments, as the readers report to them. */
  readonly replicas: ReplicaMetrics = {
    read: (server) => this.replayReads.inc({ server }),
    lag: (replica, seconds, inRotation) => {
      if (seconds !== undefined) this.replicaLag.set({ replica }, seconds);
      this.replicaInRotation.set({ replica }, inRotation ? 1 : 0);
    },
  };

  readonly captureEvents = new Counter({
    name: 'msr_capture_events_total',
    help: 'Changes the built-in capture stored (snapshot rows included; a change sent again after a restart counts again)',
    registers: [this.registry],
  });

  readonly captureStreaming = new Gauge({
    name: 'msr_capture_streaming',
    help: '1 while this server streams the capture slot, 0 while it stands by or cannot',
    registers: [this.registry],
  });

  readonly captureSlotRetainedBytes = new Gauge({
    name: 'msr_capture_slot_retained_wal_bytes',
    help: 'WAL the capture slot keeps on the source (current WAL position minus the slot restart_lsn)',
    registers: [this.registry],
  });

  readonly captureSlotLagBytes = new Gauge({
    name: 'msr_capture_slot_lag_bytes',
    help: 'How far the slot confirmed position is behind the source current WAL position',
    registers: [this.registry],
  });

  readonly captureCommitLag = new Gauge({
    name: 'msr_capture_commit_lag_seconds',
    help: 'Time between the source commit of the last stored change and its storing',
    registers: [this.registry],
  });

  readonly aggregateRefreshSeconds = new Histogram({
    name: 'msr_aggregate_refresh_seconds',
    help: 'Duration of the periodic refresh of entity_last_states',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
    registers: [this.registry],
  });

  readonly aggregateWatermark = new Gauge({
    name: 'msr_aggregate_watermark_seconds',
    help: 'entity_last_states is materialized before this time (Unix time); keyframes read raw events after it',
    registers: [this.registry],
  });

  readonly snapshotLastRefresh = new Gauge({
    name: 'msr_snapshot_last_refresh_seconds',
    help: 'When the earliest snapshot was last rebuilt (Unix time), as this server last saw it',
    registers: [this.registry],
  });

  readonly framesSent = new Counter({
    name: 'msr_frames_sent_total',
    help: 'Frames sent to sessions (each counted once however many sockets share the session)',
    registers: [this.registry],
  });

  readonly framesCoalesced = new Counter({
    name: 'msr_frames_coalesced_total',
    help: 'Frames that carried only the latest state per entity because the client fell behind',
    registers: [this.registry],
  });

  readonly bytesSent = new Counter({
    name: 'msr_bytes_sent_total',
    help: 'Bytes of replay messages written to sockets',
    registers: [this.registry],
  });

  readonly windowReads = new Counter({
    name: 'msr_window_reads_total',
    help: 'Forward frame windows sessions read: cache="hit" served from a window another session of this server read',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });

  readonly keyframeReads = new Counter({
    name: 'msr_keyframe_reads_total',
    help: 'Keyframes sessions asked for: shared="true" joined a read of the same one already under way',
    labelNames: ['shared'] as const,
    registers: [this.registry],
  });

  readonly seekSeconds = new Histogram({
    name: 'msr_seek_seconds',
    help: 'From a seek (or open/attach) to the last part of its keyframe',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly frameLateness = new Histogram({
    name: 'msr_frame_lateness_seconds',
    help: 'How long after its due time on the session clock a frame was sent',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  private sessionCount: () => { sessions: number; sockets: number } = () => ({ sessions: 0, sockets: 0 });
  private pool: Pool | undefined;

  /** Where the session and socket gauges read from at scrape time. */
  watchSessions(count: () => { sessions: number; sockets: number }): void {
    this.sessionCount = count;
  }

  watchPool(pool: Pool): void {
    this.pool = pool;
  }

  constructor() {
    // Gauges read at scrape time from what watchSessions/watchPool point at.
    const sessions: Gauge = new Gauge({
      name: 'msr_sessions',
      help: 'Replay sessions held by this server',
      registers: [this.registry],
      collect: () => sessions.set(this.sessionCount().sessions),
    });
    const sockets: Gauge = new Gauge({
      name: 'msr_sockets',
      help: "Replay sockets attached to this server's sessions",
      registers: [this.registry],
      collect: () => sockets.set(this.sessionCount().sockets),
    });
    const pool: Gauge<'state'> = new Gauge({
      name: 'msr_db_pool_connections',
      help: 'Database pool connections by state (total, idle, waiting requests)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect: () => {
        if (!this.pool) return;
        pool.set({ state: 'total' }, this.pool.totalCount);
        pool.set({ state: 'idle' }, this.pool.idleCount);
        pool.set({ state: 'waiting' }, this.pool.waitingCount);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'msr_' });
  }
}
