import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { startEmbeddedDatabase } from './db/embedded.js';
import { migrate, type MigrationResult } from './db/migrate.js';
import { createPool } from './db/pool.js';
import { ReplayReaders } from './db/replicas.js';
import { prepareStorage, publishSettings } from './db/settings.js';
import { DemoWorld } from './demo/world.js';
import { createAuthenticator } from './auth/authenticator.js';
import { availabilityRoutes } from './http/availability.js';
import { guard } from './http/guard.js';
import { healthRoutes } from './http/health.js';
import { metricsRoutes } from './http/metrics.js';
import { sessionRoutes } from './http/sessions.js';
import { snapshotRoutes } from './http/snapshots.js';
import { stateRoutes } from './http/state.js';
import { activityRoutes } from './http/activity.js';
import { entityHistoryRoutes } from './http/entity-history.js';
import { viewerRoutes } from './http/viewer.js';
import { Ingest, type IngestOptions } from './ingest/consumer.js';
import { SnapshotSignals } from './ingest/signals.js';
import { Lifecycle } from './lifecycle.js';
import { createLogger } from './logger.js';
import { Capture, type CaptureOptions } from './capture/capture.js';
import { KafkaSink } from './capture/kafka-sink.js';
import { kafkaClient } from './ingest/kafka-client.js';
import { AggregateRefresh } from './maintenance/aggregate-refresh.js';
import { Maintenance, type MaintenanceOptions } from './maintenance/scheduler.js';
import { Metrics } from './metrics.js';
import { SessionManager, type SessionManagerOptions } from './replay/session-manager.js';
import { LiveClock } from './replay/live-clock.js';
import { Transport } from './transport/transport.js';

export interface App {
  readonly config: Config;
  readonly log: Logger;
  readonly pool: Pool;
  readonly databaseUrl: string;
  readonly schema: MigrationResult;
  readonly demo: DemoWorld | undefined;
  readonly sessions: SessionManager;
  readonly ingest: Ingest | undefined;
  readonly maintenance: Maintenance | undefined;
  readonly capture: Capture | undefined;
  readonly metrics: Metrics;
  /** The HTTP/WebSocket port actually bound (config.port may be 0). */
  readonly port: number;
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly log?: Logger;
  /** How much demo history to seed (default 24 hours); tests seed less. */
  readonly demoHistoryMs?: number;
  /** Replay pacing and backpressure limits; tests make them small. */
  readonly replay?: SessionManagerOptions;
  /** Ingest hooks and topic refresh period; tests make the period short. */
  readonly ingest?: IngestOptions;
  /** Maintenance lock timeout and retry delay; tests make them short. */
  readonly maintenance?: MaintenanceOptions;
  /** Capture retry pause and batch size; tests make them small. */
  readonly capture?: CaptureOptions;
}

/** What the start-up steps share: the settings, the log, and the stops of what has started. */
interface Start {
  readonly config: Config;
  readonly options: AppOptions;
  readonly log: Logger;
  readonly lifecycle: Lifecycle;
}

/** What the writers and readers of the history are built on. */
interface Storage {
  readonly pool: Pool;
  readonly databaseUrl: string;
  readonly schema: MigrationResult;
  readonly demo: DemoWorld | undefined;
  readonly metrics: Metrics;
  /** Where the live edge stands: moved by this process's capture, read by its sessions. */
  readonly liveClock: LiveClock;
}

/**
 * Starts every part in dependency order (database, schema, demo data, ingest, sessions, HTTP) and returns a handle
 * whose stop() undoes them in reverse. A failure part-way stops what had started, then throws.
 */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? createLogger(config.logLevel);
  const start: Start = { config, options, log, lifecycle: new Lifecycle(log) };
  try {
    const storage = await startStorage(start);
    const writers = startWriters(start, storage);
    const readers = new ReplayReaders(
      storage.pool,
      config.replicas,
      config.dbPoolSize,
      log,
      storage.metrics.replicas,
    );
    start.lifecycle.started('replicas', () => readers.stop());
    await readers.start();
    const sessions = new SessionManager(storage.pool, config, log, {
      ...options.replay,
      metrics: storage.metrics,
      readers,
      clock: storage.liveClock,
    });
    sessions.start();
    start.lifecycle.started('sessions', () => sessions.stop());
    const port = await startHttp(start, storage, writers, readers, sessions);
    return {
      config,
      log,
      pool: storage.pool,
      databaseUrl: storage.databaseUrl,
      schema: storage.schema,
      demo: storage.demo,
      sessions,
      ingest: writers.ingest,
      maintenance: writers.maintenance,
      capture: writers.capture,
      metrics: storage.metrics,
      port,
      stop: () => start.lifecycle.stopAll(),
    };
  } catch (err) {
    await start.lifecycle.stopAll();
    throw err;
  }
}

/** The database (embedded without DATABASE_URL), its pool and schema, and the demo world. */
async function startStorage({ config, options, log, lifecycle }: Start): Promise<Storage> {
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === undefined) {
    const embedded = await startEmbeddedDatabase(config.dataDir, config.embeddedPgPort, log);
    lifecycle.started('embedded database', () => embedded.stop());
    databaseUrl = embedded.url;
  }
  const pool = createPool(databaseUrl, config.dbPoolSize, log);
  lifecycle.started('database pool', () => pool.end());
  const schema = await migrate(pool, log);
  log.info(
    { dialect: schema.dialect, version: schema.version, applied: schema.applied.length },
    'schema ready',
  );
  await publishSettings(pool, config);
  await prepareStorage(pool, config);
  let demo: DemoWorld | undefined;
  if (config.demo) {
    demo = new DemoWorld(pool, log, {
      ...(options.demoHistoryMs === undefined ? {} : { historyMs: options.demoHistoryMs }),
      // One capture per process: a configured source takes it, and the demo writes events itself.
      mayCapture: !config.capture,
    });
    await demo.start();
    lifecycle.started('demo', () => demo!.stop());
  }
  const metrics = new Metrics();
  metrics.watchPool(pool);
  return { pool, databaseUrl, schema, demo, metrics, liveClock: new LiveClock(config.liveDelayMs) };
}

interface Writers {
  readonly ingest: Ingest | undefined;
  readonly capture: Capture | undefined;
  readonly signals: SnapshotSignals | undefined;
  readonly maintenance: Maintenance | undefined;
  readonly aggregate: AggregateRefresh | undefined;
}

/** What writes and keeps the history: ingest, capture, snapshot signals, maintenance, aggregate refresh. */
function startWriters(start: Start, storage: Storage): Writers {
  const { config, options, log, lifecycle } = start;
  const { pool, metrics, demo, schema } = storage;
  const brokers = config.kafka.brokers;
  const ingest = brokers
    ? new Ingest(pool, { ...config.kafka, brokers }, log, metrics, options.ingest)
    : undefined;
  if (ingest) {
    ingest.start();
    lifecycle.started('ingest', () => ingest.stop());
  }
  const capture = startCapture(start, storage);
  const signals = brokers
    ? new SnapshotSignals({ ...config.kafka, brokers }, config.kafka.signalTopic)
    : undefined;
  if (signals) lifecycle.started('snapshot signals', () => signals.stop());
  const maintenance = config.cleanupEnabled
    ? new Maintenance(pool, config, log, metrics, { ...options.maintenance, after: demo?.seeded })
    : undefined;
  if (maintenance) {
    maintenance.start();
    lifecycle.started('maintenance', () => maintenance.stop());
  }
  const aggregate =
    config.aggregateRefreshMs > 0
      ? new AggregateRefresh(pool, schema.dialect, log, metrics, config.aggregateRefreshMs)
      : undefined;
  if (aggregate) {
    aggregate.start();
    lifecycle.started('aggregate refresh', () => aggregate.stop());
  }
  return { ingest, capture, signals, maintenance, aggregate };
}

/** The configured capture, or the live demo's own (one capture per process). */
function startCapture(
  { config, options, log, lifecycle }: Start,
  { pool, metrics, demo, databaseUrl, liveClock }: Storage,
) {
  const demoCapture = demo?.captureConfig(databaseUrl, config.captureTiming);
  if (!config.capture && !demoCapture) return undefined;
  const kafka =
    config.capture?.to === 'kafka'
      ? new KafkaSink(kafkaClient({ ...config.kafka, brokers: config.kafka.brokers! }), log, pool)
      : undefined;
  // Into the database, what the capture has stored is where live sessions may play up to.
  const stored = { storedThrough: (commitUs: number) => liveClock.stored(commitUs) };
  const into = kafka ? { kafka } : config.liveEdgeFollowsCapture ? stored : {};
  const capture = config.capture
    ? new Capture(config.capture, pool, log, metrics, { ...options.capture, ...into })
    : new Capture(demoCapture!, pool, log, metrics, {
        ...options.capture,
        ...into,
        after: demo!.sourceReady,
      });
  if (!config.capture) demo!.watch(capture);
  capture.start();
  lifecycle.started('capture', () => capture.stop());
  return capture;
}

/** HTTP and WebSocket: the replay socket and every route behind the authenticator; the port bound. */
async function startHttp(
  { config, log, lifecycle }: Start,
  { pool, schema, demo, metrics }: Storage,
  { ingest, capture, signals, maintenance, aggregate }: Writers,
  readers: ReplayReaders,
  sessions: SessionManager,
): Promise<number> {
  const authenticator = createAuthenticator(config.auth);
  if (config.auth.mode === 'none') {
    log.warn('AUTH_MODE=none: no authentication; every client may see and control every session');
  }
  const transport = new Transport(log);
  transport.addReplaySocket(
    sessions,
    authenticator,
    { maxSockets: config.maxSockets, unboundBufferBytes: config.unboundSocketBufferBytes },
    metrics,
  );
  const health = healthRoutes({
    pool,
    schemaVersion: schema.version,
    demo,
    ingest,
    ingestLagThreshold: config.kafka.lagThreshold,
    maintenance,
    aggregate,
    capture,
    captureMaxRetainedBytes: config.capture?.maxRetainedWalBytes,
    replicas: readers,
  });
  const routes = [
    ...health,
    ...metricsRoutes(metrics),
    ...availabilityRoutes(pool, config),
    ...stateRoutes(pool, config, readers),
    ...activityRoutes(pool, config),
    ...entityHistoryRoutes(pool, config),
    ...sessionRoutes(sessions),
    ...snapshotRoutes(signals, capture),
    ...viewerRoutes(),
  ];
  transport.addRoutes(guard(routes, authenticator));
  const port = await transport.listen(config.host, config.port);
  lifecycle.started('http', () => transport.close());
  log.info({ host: config.host, port }, `MSR listening on http://${config.host}:${port}`);
  return port;
}
