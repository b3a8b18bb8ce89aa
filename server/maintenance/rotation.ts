import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { AdvisoryLock } from '../db/locks.js';
import { REFRESH_AGGREGATE } from '../db/sql-fragments.js';

export interface RotationResult {
  readonly ran: boolean;
  /** The new snapshot cutoff (epoch ms); events before it are gone. */
  readonly cutoff?: number;
  readonly active?: string;
  readonly droppedUnits?: number;
  readonly refreshMs?: number;
  readonly snapshotMs?: number;
  readonly dropMs?: number;
}

export interface RotationOptions {
  /**
   * How long one statement may wait for a lock held by others (default 500 ms). While it waits, every
   * reader that needs the same table queues behind it: this bounds the stall replay can see.
   */
  readonly lockTimeoutMs?: number;
  /** Tries of a step that ran into the lock timeout before the run fails (default 20). */
  readonly lockAttempts?: number;
  /** Pause between those tries (default 3 s), when readers run unhindered. */
  readonly lockRetryMs?: number;
}

const LOCK_NOT_AVAILABLE = '55P03';

type Timed = <T>(work: () => Promise<T>) => Promise<[T, number]>;

/**
 * A step that cannot get its lock within the timeout gives way (readers go on) and tries again;
 * the step's value comes with its time in ms.
 */
function retrying(log: Logger, options: RotationOptions): Timed {
  const attempts = Math.max(1, options.lockAttempts ?? 20);
  return async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const value = await work();
        return [value, Math.round(performance.now() - t0)];
      } catch (err) {
        if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE || attempt >= attempts) throw err;
        log.info({ attempt, of: attempts }, 'maintenance step waits for a lock held by others; trying again');
        await new Promise((r) => setTimeout(r, options.lockRetryMs ?? 3_000));
      }
    }
  };
}

/** The run's three steps: refresh the aggregate, rebuild and flip the snapshot, drop what is before it. */
async function runSteps(client: PoolClient, timed: Timed, log: Logger) {
  const [, refreshMs] = await timed(() => client.query(REFRESH_AGGREGATE));
  const [pointer, snapshotMs] = await timed(async () => {
    const { rows } = await client.query<{ active: string; cutoff_time: Date; last_refresh: Date }>(
      'select (p).active, (p).cutoff_time, (p).last_refresh from (select msr.refresh_earliest_snapshot() as p) s',
    );
    return rows[0]!;
  });
  const [droppedUnits, dropMs] = await timed(async () => {
    const { rows } = await client.query<{ n: number }>('select msr.drop_events_before($1) as n', [
      pointer.cutoff_time,
    ]);
    // Storage ahead is a convenience (rows of any day are accepted): a failure is told, not fatal.
    await client
      .query(`select msr.prepare_storage(current_date, current_date + 7)`)
      .catch((err: unknown) => log.warn({ err }, 'could not prepare the next days of storage'));
    return rows[0]!.n;
  });
  const result: RotationResult = {
    ran: true,
    cutoff: pointer.cutoff_time.getTime(),
    active: pointer.active,
    droppedUnits,
    refreshMs,
    snapshotMs,
    dropMs,
  };
  return { result, pointer };
}

/**
 * One maintenance run, under a session advisory lock so servers sharing the database take turns:
 * refresh entity_last_states, rebuild the inactive earliest snapshot at the new cutoff and flip
 * the pointer to it (one transaction, so readers see the old or the new snapshot, never a mix),
 * then drop the events before the cutoff (whole partitions or chunks) and prepare tomorrow's
 * storage. A failure before the flip leaves the previous snapshot active.
 */
export async function rotate(
  pool: Pool,
  log: Logger,
  metrics: Metrics,
  options: RotationOptions = {},
): Promise<RotationResult> {
  const client = await pool.connect();
  const started = performance.now();
  let locked = false;
  let failure: Error | undefined;
  try {
    locked = (
      await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [AdvisoryLock.MAINTENANCE])
    ).rows[0]!.ok;
    if (!locked) {
      log.info('maintenance skipped: another server is running it');
      metrics.maintenanceRuns.inc({ result: 'skipped' });
      return { ran: false };
    }
    await client.query(`set lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs ?? 500))}`);
    const { result, pointer } = await runSteps(client, retrying(log, options), log);
    const seconds = (performance.now() - started) / 1000;
    metrics.maintenanceRuns.inc({ result: 'ok' });
    metrics.maintenanceSeconds.observe(seconds);
    metrics.snapshotLastRefresh.set(pointer.last_refresh.getTime() / 1000);
    log.info(
      { ...result, cutoff: pointer.cutoff_time.toISOString(), ms: Math.round(seconds * 1000) },
      'maintenance done',
    );
    return result;
  } catch (err) {
    failure = err as Error;
    metrics.maintenanceRuns.inc({ result: 'failed' });
    log.error({ err }, 'maintenance failed; the previous snapshot stays active');
    throw err;
  } finally {
    if (locked)
      await client.query('select pg_advisory_unlock($1)', [AdvisoryLock.MAINTENANCE]).catch(() => undefined);
    await client.query('reset lock_timeout').catch(() => undefined);
    // A failed run may have lost its connection: the pool drops it rather than lend it again.
    client.release(failure);
  }
}
