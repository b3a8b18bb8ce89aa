import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { CloseCode, ErrorCode } from '@msr/protocol/codes';
import type { OpenMessage } from '@msr/protocol/messages';
import { mayUse } from './access.js';
import type { Principal } from '../principal.js';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { readAvailability, type Availability } from './availability.js';
import { msToUs, usToMs } from './micros.js';
import { ReplayReaders } from '../db/replicas.js';
import { ReplayError } from './errors.js';
import { DEFAULT_LIMITS, type PlayerLimits, type ReaderChoice } from './player.js';
import { LiveTail } from './live-tail.js';
import { LiveClock } from './live-clock.js';
import { WINDOW_CACHE_BOUNDS, WindowCache, type WindowCacheOptions } from './window-cache.js';
import { SessionLimitError, SessionRegistry } from './registry.js';
import { decodeResumeToken, resumeReason } from './resume.js';
import { KeyframeReads } from './shared-keyframes.js';
import { ReplaySession, type SessionSpec } from './session.js';

export interface SessionManagerOptions {
  /** This server's id in msr.session (default: a new random one). */
  readonly serverId?: string;
  readonly leaseMs?: number;
  /** A session with no socket attached for this long is closed. */
  readonly idleMs?: number;
  readonly limits?: PlayerLimits;
  readonly metrics?: Metrics;
  /** Where replay reads go; default: every read on `pool`. */
  readonly readers?: ReaderChoice;
  /**
   * Whether live sessions near the edge are fed by the server's live tail (default); without it
   * each reads for itself, as sessions further back always do (tests of that path turn it off).
   */
  readonly liveTail?: boolean;
  /** The window cache shared by this server's sessions (default on; `false` turns it off). */
  readonly windowCache?: WindowCacheOptions | false;
  /** Where the live edge stands (default: the wall clock less LIVE_DELAY_MS). */
  readonly clock?: LiveClock;
}

export type OpenParams = Omit<OpenMessage, 'type' | 'rid'>;

/** Opens, finds, resumes and closes this server's replay sessions; the slots are counted in PostgreSQL. */
export class SessionManager {
  private readonly sessions = new Map<string, ReplaySession>();
  readonly serverId: string;
  private readonly registry: SessionRegistry;
  private readonly idleMs: number;
  private readonly limits: PlayerLimits;
  private readonly metrics: Metrics | undefined;
  private readonly keyframes: KeyframeReads;
  private readonly readers: ReaderChoice;
  private readonly clock: LiveClock;
  /** Feeds every live-follow session of this server near the edge, with one read per interval. */
  readonly tail: LiveTail | undefined;
  /** Frame windows one session read, served to the others at nearby positions. */
  readonly windows: WindowCache | undefined;
  private timer: NodeJS.Timeout | undefined;
  private availability: { value: Availability; at: number } | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly config: Config,
    private readonly log: Logger,
    options: SessionManagerOptions = {},
  ) {
    this.serverId = options.serverId ?? randomUUID();
    this.registry = new SessionRegistry(
      pool,
      this.serverId,
      () => config.maxActiveSessions,
      options.leaseMs ?? 30_000,
    );
    this.idleMs = options.idleMs ?? 60_000;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.metrics = options.metrics;
    this.readers = options.readers ?? new ReplayReaders(pool, { urls: [], maxLagMs: 0 }, 0, log);
    this.clock = options.clock ?? new LiveClock(config.liveDelayMs);
    this.tail =
      options.liveTail === false
        ? undefined
        : new LiveTail(
            pool,
            this.clock,
            (err) => log.warn({ err }, 'live tail read failed; retrying'),
            (read, rows) => {
              options.metrics?.liveTailReads.inc();
              options.metrics?.liveTailRows.inc({ read }, rows);
            },
          );
    this.windows =
      options.windowCache === false
        ? undefined
        : new WindowCache(
            // A window is served as long as a session's own read-ahead may hold what it read.
            options.windowCache ?? { ...WINDOW_CACHE_BOUNDS, ttlMs: this.limits.readAheadMaxMs },
            (hit) => this.metrics?.windowReads.inc({ cache: hit ? 'hit' : 'miss' }),
          );
    this.keyframes = new KeyframeReads(pool, (shared) =>
      this.metrics?.keyframeReads.inc({ shared: String(shared) }),
    );
    this.metrics?.watchSessions(() => ({
      sessions: this.sessions.size,
      sockets: [...this.sessions.values()].reduce((n, s) => n + s.sinks.size, 0),
    }));
  }

  get maxSocketsPerSession(): number {
    return this.config.maxSocketsPerSession;
  }

  start(): void {
    this.timer = setInterval(() => void this.housekeeping(), Math.min(this.registry.leaseMs / 3, 5_000));
  }

  /** Shutdown: clients are told to go elsewhere (1001) and their sessions are left to be resumed there. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.tail?.stop();
    const sessions = this.list();
    this.sessions.clear();
    for (const session of sessions) {
      session.close();
      const { position, speed, playing } = session.state;
      const reason = resumeReason({ t: usToMs(position), speed, playing });
      for (const sink of [...session.sinks]) {
        // Said in a message too: a client that does not read close reasons still learns why.
        sink.send({
          type: 'error',
          code: ErrorCode.SHUTTING_DOWN,
          message: 'this server is shutting down: reconnect and attach with the resume token of the close',
        });
        sink.close(CloseCode.GOING_AWAY, reason);
      }
    }
    await this.registry
      .handOver(sessions.map((s) => ({ id: s.id, ...s.state })))
      .catch((err: unknown) => this.log.warn({ err }, 'could not hand sessions over'));
  }

  /** The window a session may cover now, cached for a second: seek storms must not hammer the database. */
  async window(): Promise<Availability> {
    const now = Date.now();
    if (!this.availability || now - this.availability.at > 1_000) {
      this.availability = { value: await readAvailability(this.pool, this.config, now), at: now };
    }
    return this.availability.value;
  }

  /** A new session for `owner`; an administrator's sessions do not count against a user's share. */
  async open(params: OpenParams, owner: string | null, admin = false): Promise<ReplaySession> {
    const window = await this.window();
    const now = Date.now();
    if (!(params.from < params.to)) throw new ReplayError(ErrorCode.BAD_RANGE, 'from must be before to');
    if (params.to - params.from > this.config.maxPlaybackRangeDays * 86_400_000) {
      throw new ReplayError(
        ErrorCode.BAD_RANGE,
        `a range may cover at most ${this.config.maxPlaybackRangeDays} days`,
      );
    }
    const earliest = window.earliest ?? now;
    if (params.from < earliest || params.from > now) {
      throw new ReplayError(
        ErrorCode.OUT_OF_RANGE,
        `from must lie between the earliest available time ${earliest} and now ${now}`,
      );
    }
    const at = params.at ?? params.from;
    if (at < params.from || at > params.to || at > now) {
      throw new ReplayError(ErrorCode.OUT_OF_RANGE, 'at must lie inside [from, to] and not in the future');
    }
    const spec = {
      id: randomUUID(),
      owner,
      sharedWith: params.sharedWith ?? [],
      from: msToUs(params.from),
      to: msToUs(params.to),
      filter: { tables: params.tables, entities: params.entities },
      position: msToUs(at),
      speed: params.speed ?? 1,
      playing: false,
    };
    try {
      await this.registry.claim(spec, admin ? undefined : this.config.maxSessionsPerUser);
    } catch (err) {
      if (err instanceof SessionLimitError) {
        throw new ReplayError(
          err.perUser ? ErrorCode.USER_SESSION_LIMIT : ErrorCode.SESSION_LIMIT,
          err.message,
        );
      }
      throw err;
    }
    const session = this.session(spec);
    this.log.info(
      { session: spec.id, from: params.from, to: params.to, filter: spec.filter },
      'session opened',
    );
    return session;
  }

  /** A session playing here from `record`, registered on this server. */
  private session(record: SessionSpec): ReplaySession {
    const session = new ReplaySession(record, {
      readers: this.readers,
      keyframes: this.keyframes,
      tail: this.tail,
      windows: this.windows,
      limits: this.limits,
      clock: this.clock,
      log: this.log,
      metrics: this.metrics,
      earliest: async () => (await this.window()).earliest,
    });
    this.sessions.set(record.id, session);
    return session;
  }

  /** This server's session, or one another server left behind (resumed here at its last position). */
  async find(id: string, principal: Principal, resumeToken?: string): Promise<ReplaySession> {
    const forbidden = () => new ReplayError(ErrorCode.FORBIDDEN, 'this session belongs to another user');
    const local = this.sessions.get(id);
    if (local) {
      if (!mayUse(principal, local.spec)) throw forbidden();
      return local;
    }
    // Ownership is checked before the take-over: a refused attach must not move the session here.
    const owners = await this.registry.owners(id);
    if (owners && !mayUse(principal, owners)) throw forbidden();
    const adopted = owners && (await this.registry.adopt(id));
    if (!adopted) {
      const holder = owners && (await this.registry.holder(id));
      if (holder?.live) {
        throw new ReplayError(
          ErrorCode.SESSION_ELSEWHERE,
          `session ${id} is playing on server ${holder.serverId}; attach there`,
        );
      }
      throw new ReplayError(ErrorCode.SESSION_NOT_FOUND, `no active session ${id}`);
    }
    // The token says where the session stood when its server left, even if that server's last
    // write of the position did not reach the database; it stays inside the session's range.
    const resume = resumeToken === undefined ? undefined : decodeResumeToken(resumeToken);
    const record = resume
      ? {
          ...adopted,
          position: Math.min(adopted.to, Math.max(adopted.from, msToUs(resume.t))),
          speed: resume.speed,
          playing: resume.playing,
        }
      : adopted;
    const session = this.session(record);
    this.log.info({ session: id, position: usToMs(record.position) }, 'session resumed from another server');
    return session;
  }

  local(id: string): ReplaySession | undefined {
    return this.sessions.get(id);
  }

  list(): ReplaySession[] {
    return [...this.sessions.values()];
  }

  async close(id: string, code: number = CloseCode.NORMAL, reason = 'session closed'): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.sessions.delete(id);
    session.close();
    for (const sink of [...session.sinks]) sink.close(code, reason);
    await this.registry
      .release(id)
      .catch((err: unknown) => this.log.warn({ err, session: id }, 'could not release slot'));
    const { position } = session.state;
    this.log.info(
      {
        session: id,
        ms: Date.now() - session.startedAt,
        frames: session.framesSent,
        position: usToMs(position),
        reason,
      },
      'session ended',
    );
    return true;
  }

  /** Validates a seek target against the session's range and what is stored now. */
  async activeCount(): Promise<number> {
    return this.registry.activeCount();
  }

  private async housekeeping(): Promise<void> {
    const now = Date.now();
    for (const session of this.list()) {
      if (session.idleSince !== undefined && now - session.idleSince > this.idleMs) {
        await this.close(session.id, CloseCode.SESSION_GONE, 'idle session expired');
      } else {
        session.checkStuck(now);
      }
    }
    try {
      await this.registry.renew(this.list().map((s) => ({ id: s.id, ...s.state })));
    } catch (err) {
      this.log.warn({ err }, 'could not renew session leases');
    }
  }
}
