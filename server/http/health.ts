import type { Pool } from 'pg';
import { describeConnectionFailure } from '../connection-failure.js';
import { schemaIsCurrent } from '../db/migrate.js';
import type { ReplayReaders, ReplicaStatus } from '../db/replicas.js';
import type { DemoWorld } from '../demo/world.js';
import type { Ingest } from '../ingest/consumer.js';
import type { AggregateRefresh } from '../maintenance/aggregate-refresh.js';
import type { Capture } from '../capture/capture.js';
import type { Maintenance } from '../maintenance/scheduler.js';
import { json, type Route } from './route.js';

const CHECK_TIMEOUT_MS = 3_000;

export interface ReadinessCheck {
  readonly ok: boolean;
  readonly error?: string;
  readonly topics?: readonly string[];
  readonly lag?: number;
  readonly lastRefresh?: string | null;
  readonly watermark?: string | null;
  /** Something an operator should look at that does not stop this server from serving. */
  readonly warning?: string;
  readonly state?: string;
  readonly code?: string;
  readonly warnings?: readonly string[];
  readonly retainedWalBytes?: number;
  readonly replicas?: readonly { name: string; inRotation: boolean; lagSeconds: number | null }[];
}

/**
 * Replicas never make the server unready: the primary serves what they cannot. Each one out of
 * rotation is a warning naming why; each one's lag is reported.
 */
function replicaReadiness(status: readonly ReplicaStatus[]): ReadinessCheck {
  const warnings = status
    .filter((r) => !r.inRotation)
    .map((r) => `${r.name}: ${r.problem ?? 'out of rotation'}`);
  return {
    ok: true,
    replicas: status.map((r) => ({
      name: r.name,
      inRotation: r.inRotation,
      lagSeconds: r.lagMs === undefined ? null : Math.round(r.lagMs / 100) / 10,
    })),
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

/** The periodic aggregate refresh is failing when this many runs in a row failed. */
const AGGREGATE_FAILURES = 3;

/** The snapshot must have been rebuilt within this long (daily maintenance, with an hour's slack). */
const SNAPSHOT_MAX_AGE_MS = 25 * 3_600_000;

export interface HealthSources {
  readonly pool: Pool;
  readonly schemaVersion: number;
  readonly demo?: DemoWorld;
  readonly ingest?: Ingest;
  /** Ingest is not ready while more records than this wait in its topics. */
  readonly ingestLagThreshold: number;
  /** Maintenance runs here: report the earliest snapshot's freshness. */
  readonly maintenance?: Maintenance;
  readonly aggregate?: AggregateRefresh;
  readonly capture?: Capture;
  /** Capture is not ready while its slot keeps more WAL than this on the source. */
  readonly captureMaxRetainedBytes?: number;
  readonly replicas?: ReplayReaders;
}

/** /healthz: the process answers. /readyz: each dependency by name, 503 when any fails. */
export function healthRoutes({
  pool,
  schemaVersion,
  demo,
  ingest,
  ingestLagThreshold,
  maintenance,
  aggregate,
  capture,
  captureMaxRetainedBytes = Infinity,
  replicas,
}: HealthSources): Route[] {
  return [
    { method: 'get', path: '/healthz', access: 'public', handler: () => json(200, { status: 'ok' }) },
    {
      method: 'get',
      path: '/readyz',
      access: 'public',
      handler: async () => {
        const database = await check(async () => {
          if (!(await schemaIsCurrent(pool, schemaVersion)))
            throw new Error(`schema is not at version ${schemaVersion}`);
        });
        const checks: Record<string, ReadinessCheck> = { database };
        if (demo) {
          const { state, error } = demo.status;
          checks.demo =
            state === 'seeding' || state === 'connecting' || state === 'failed'
              ? { ok: false, error: error ?? state }
              : { ok: true };
        }
        if (ingest) {
          const { state, error, topics, lag, lagUnknown, warnings } = ingest.status;
          if (state !== 'consuming') checks.kafka = { ok: false, error: error ?? state, topics };
          else if (lag !== undefined && lag > ingestLagThreshold) {
            checks.kafka = {
              ok: false,
              error: `${lag} records wait in Kafka (threshold ${ingestLagThreshold})`,
              topics,
              lag,
            };
          } else checks.kafka = { ok: true, topics, ...(lag === undefined ? {} : { lag }) };
          if (warnings) checks.kafka = { ...checks.kafka, warnings };
          if (lagUnknown) checks.kafka = { ...checks.kafka, warning: lagUnknown };
        }
        if (maintenance) checks.snapshot = await check(() => snapshotFreshness(pool, maintenance));
        if (aggregate) checks.aggregate = aggregateFreshness(aggregate);
        if (capture) checks.capture = captureReadiness(capture, captureMaxRetainedBytes);
        if (replicas && replicas.status.length > 0) checks.replicas = replicaReadiness(replicas.status);
        const ready = Object.values(checks).every((c) => c.ok);
        return json(ready ? 200 : 503, { ready, checks });
      },
    },
  ];
}

async function snapshotFreshness(pool: Pool, maintenance: Maintenance): Promise<ReadinessCheck> {
  const { rows } = await pool.query<{ last_refresh: Date | null }>(
    'select last_refresh from msr.snapshot_pointer',
  );
  const last = rows[0]?.last_refresh ?? null;
  // Replay is exact without a snapshot (it starts from the beginning); only a failed first build counts.
  if (last === null) {
    return maintenance.settled
      ? { ok: false, error: 'the earliest snapshot has never been built', lastRefresh: null }
      : { ok: true, lastRefresh: null };
  }
  const ok = Date.now() - last.getTime() <= SNAPSHOT_MAX_AGE_MS;
  return ok
    ? { ok, lastRefresh: last.toISOString() }
    : { ok, error: 'the earliest snapshot is older than 25 hours', lastRefresh: last.toISOString() };
}

/**
 * The capture is ready while it streams, or stands by for another server that streams; a problem
 * on the source (with its fix), or a slot that keeps too much WAL there, makes it unready.
 */
function captureReadiness(capture: Capture, maxRetainedBytes: number): ReadinessCheck {
  const { state, error, code, warnings, slot } = capture.status;
  const base = {
    state,
    ...(warnings.length > 0 ? { warnings } : {}),
    ...(slot ? { retainedWalBytes: slot.retainedBytes } : {}),
  };
  if (error) return { ok: false, error, ...(code ? { code } : {}), ...base };
  if (state !== 'streaming' && state !== 'standby' && state !== 'off')
    return { ok: false, error: state, ...base };
  if (slot && slot.retainedBytes > maxRetainedBytes) {
    return {
      ok: false,
      error: `the slot keeps ${slot.retainedBytes} bytes of WAL on the source (threshold ${maxRetainedBytes})`,
      ...base,
    };
  }
  return { ok: true, ...base };
}

/**
 * Keyframes stay exact whatever the aggregate's age (the raw tail covers the rest), so only
 * repeated refresh failures make the server unready; TimescaleDB's failing policy is a warning.
 */
function aggregateFreshness(aggregate: AggregateRefresh): ReadinessCheck {
  const { watermark, lastError, consecutiveFailures, policyError } = aggregate.status;
  const at = watermark === null ? null : new Date(watermark).toISOString();
  if (consecutiveFailures >= AGGREGATE_FAILURES) {
    return {
      ok: false,
      error: `entity_last_states refresh failed ${consecutiveFailures} times: ${lastError}`,
      watermark: at,
    };
  }
  return policyError
    ? {
        ok: true,
        watermark: at,
        warning: `TimescaleDB's refresh policy fails (${policyError}); MSR refreshes the aggregate itself`,
      }
    : { ok: true, watermark: at };
}

/** Runs a probe with a deadline; a probe that throws or takes too long is a failed check. */
async function check(probe: () => Promise<ReadinessCheck | void>): Promise<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return (await Promise.race([probe(), timeout])) ?? { ok: true };
  } catch (err) {
    return { ok: false, error: describeConnectionFailure(err) };
  } finally {
    clearTimeout(timer);
  }
}
