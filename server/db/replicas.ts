import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { describeConnectionFailure } from '../connection-failure.js';
import type { ReplicaConfig } from '../config.js';
import { createPool } from './pool.js';
import { redactSecrets } from './redact.js';

/** Where replay reads go: the primary or one hot standby. */
export interface ReplayReader {
  /** `primary`, or the replica's host:port/database (never its credentials). */
  readonly name: string;
  readonly pool: Pool;
  /**
   * Epoch ms up to which this server holds everything the primary had committed: the primary's
   * clock for the primary itself, the replica's replay position for a standby.
   */
  asOf(): number;
}

export interface ReplicaStatus {
  readonly name: string;
  readonly inRotation: boolean;
  /** How far behind the primary the replica's data is (ms), once known. */
  readonly lagMs: number | undefined;
  readonly problem: string | undefined;
}

/** Reads taken by each reader and each replica's lag, for /metrics. */
export interface ReplicaMetrics {
  read(reader: string): void;
  lag(replica: string, seconds: number | undefined, inRotation: boolean): void;
}

interface Replica extends ReplayReader {
  asOfMs: number;
  lagMs: number | undefined;
  inRotation: boolean;
  problem: string | undefined;
}

interface ReplayState {
  recovery: boolean;
  caught_up: boolean | null;
  replayed_at: number | null;
}

/** How often each replica's replay position is read. */
const CHECK_MS = 1_000;
/** A replica that has not answered its check by then is out of rotation (a host that drops packets). */
const CHECK_TIMEOUT_MS = 3_000;

/** A replica's name for logs and metrics: where it is, not who logs in. */
function replicaName(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return redactSecrets(url);
  }
}

/**
 * Replay reads spread over hot standbys. Each replica's replay position is read every second
 * against the primary's WAL position, and a replica is in rotation while it answers, is still a
 * standby, and is at most `maxLagMs` behind. Sessions keep their reader while it stays in rotation
 * and otherwise move to the next one (or to the primary, which is always there). A reader's
 * `asOf` bounds how far a session reads on it, so a lagging replica can never make a frame skip
 * rows the primary already had.
 */
export class ReplayReaders {
  readonly primary: ReplayReader;
  private readonly replicas: Replica[];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    primaryPool: Pool,
    private readonly config: ReplicaConfig,
    poolSize: number,
    private readonly log: Logger,
    private readonly metrics?: ReplicaMetrics,
  ) {
    this.primary = { name: 'primary', pool: primaryPool, asOf: () => Date.now() };
    this.replicas = config.urls.map((url) => {
      const replica: Replica = {
        name: replicaName(url),
        pool: createPool(url, poolSize, log),
        asOfMs: 0,
        lagMs: undefined,
        inRotation: false,
        problem: 'not checked yet',
        asOf: () => replica.asOfMs,
      };
      return replica;
    });
  }

  /** Starts the replica checks; the first one runs before this returns, so start-up reads spread at once. */
  async start(): Promise<void> {
    if (this.replicas.length === 0) return;
    await this.check();
    const loop = () => {
      this.timer = setTimeout(() => {
        void this.check().finally(() => {
          if (!this.stopped) loop();
        });
      }, CHECK_MS);
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all(this.replicas.map((r) => r.pool.end().catch(() => undefined)));
  }

  /**
   * The reader for a session's next read: `current` while it stays in rotation and holds data up
   * to `needs` (epoch ms), else the next replica that does, else the primary.
   */
  pick(current?: ReplayReader, needs = -Infinity): ReplayReader {
    const usable = (r: Replica) => r.inRotation && r.asOfMs >= needs;
    let reader: ReplayReader = this.primary;
    const held = this.replicas.find((r) => r === current);
    if (held && usable(held)) reader = held;
    else {
      for (let i = 0; i < this.replicas.length; i++) {
        const candidate = this.replicas[(this.next + i) % this.replicas.length]!;
        if (usable(candidate)) {
          this.next = (this.next + i + 1) % this.replicas.length;
          reader = candidate;
          break;
        }
      }
    }
    this.metrics?.read(reader.name);
    return reader;
  }

  /** A read on `reader` failed: a replica leaves the rotation until its next check succeeds. */
  failed(reader: ReplayReader, err: unknown): void {
    const replica = this.replicas.find((r) => r === reader);
    if (!replica?.inRotation) return;
    this.setState(replica, { inRotation: false, problem: describeConnectionFailure(err) });
  }

  get status(): ReplicaStatus[] {
    return this.replicas.map(({ name, inRotation, lagMs, problem }) => ({
      name,
      inRotation,
      lagMs,
      problem,
    }));
  }

  private async check(): Promise<void> {
    // The primary's WAL position first: a replica that has replayed it holds everything the
    // primary had at `before`, even when nothing was written since (its replay timestamp stalls).
    const before = Date.now();
    let primaryLsn: string | undefined;
    try {
      const { rows } = await this.primary.pool.query<{ lsn: string }>(
        'select pg_current_wal_lsn()::text as lsn',
      );
      primaryLsn = rows[0]!.lsn;
    } catch (err) {
      this.log.debug({ err }, 'replica check: primary WAL position unavailable');
    }
    await Promise.all(this.replicas.map((replica) => this.checkReplica(replica, primaryLsn, before)));
  }

  private async checkReplica(
    replica: Replica,
    primaryLsn: string | undefined,
    before: number,
  ): Promise<void> {
    let state: ReplayState;
    try {
      const query = replica.pool.query<ReplayState>(
        `select pg_is_in_recovery() as recovery,
                pg_last_wal_replay_lsn() >= $1::pg_lsn as caught_up,
                extract(epoch from pg_last_xact_replay_timestamp()) * 1000 as replayed_at`,
        [primaryLsn ?? null],
      );
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`)),
          CHECK_TIMEOUT_MS,
        );
      });
      // The query may still end later; its failure then has nobody to tell.
      query.catch(() => undefined);
      const { rows } = await Promise.race([query, timeout]).finally(() => clearTimeout(timer));
      state = rows[0]!;
    } catch (err) {
      this.setState(replica, { inRotation: false, problem: describeConnectionFailure(err) });
      return;
    }
    if (!state.recovery) {
      this.setState(replica, {
        inRotation: false,
        problem: 'not a standby (pg_is_in_recovery() is false): it does not follow the primary',
      });
      return;
    }
    const asOf = state.caught_up ? before : Number(state.replayed_at ?? 0);
    // asOf never goes back: a stale reading must not move a session's bound backwards.
    replica.asOfMs = Math.max(replica.asOfMs, asOf);
    replica.lagMs = Math.max(0, Date.now() - replica.asOfMs);
    if (replica.lagMs > this.config.maxLagMs) {
      this.setState(replica, {
        inRotation: false,
        problem: `${Math.round(replica.lagMs / 1000)} s behind the primary (more than REPLICA_MAX_LAG_SECONDS)`,
      });
    } else this.setState(replica, { inRotation: true, problem: undefined });
  }

  private setState(replica: Replica, next: { inRotation: boolean; problem: string | undefined }): void {
    if (replica.inRotation !== next.inRotation) {
      if (next.inRotation) this.log.info({ replica: replica.name }, 'replica in rotation');
      else this.log.warn({ replica: replica.name, problem: next.problem }, 'replica out of rotation');
    }
    replica.inRotation = next.inRotation;
    replica.problem = next.problem;
    this.metrics?.lag(
      replica.name,
      replica.lagMs === undefined ? undefined : replica.lagMs / 1000,
      next.inRotation,
    );
  }
}
