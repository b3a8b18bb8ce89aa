import type { OutgoingMessage } from './outgoing.js';
import type { Logger } from 'pino';
import type { Speed } from '@msr/protocol/messages';
import type { EntityFilter } from './entity-filter.js';
import type { Metrics } from '../metrics.js';
import type { KeyframeReads } from './shared-keyframes.js';
import type { LiveTail } from './live-tail.js';
import type { LiveClock } from './live-clock.js';
import type { WindowCache } from './window-cache.js';
import { CloseCode, ErrorCode } from '@msr/protocol/codes';
import { ReplayError } from './errors.js';
import { msToUs, usToMs, type Micros } from './micros.js';
import {
  Player,
  type PlayerLimits,
  type PlayerState,
  type ReaderChoice,
  type SessionOutput,
} from './player.js';

/** One attached socket, as the session sees it. */
export interface SessionSink {
  send(message: OutgoingMessage): void;
  buffered(): number;
  close(code: number, reason: string): void;
}

export interface SessionSpec {
  readonly id: string;
  /** The subject that opened it; null when authentication is off. */
  readonly owner: string | null;
  /** Other subjects who may attach to and control it. */
  readonly sharedWith: readonly string[];
  readonly from: Micros;
  readonly to: Micros;
  readonly filter: EntityFilter;
  readonly position: Micros;
  readonly speed: Speed;
  readonly playing: boolean;
}

/** What every session of a server shares. */
export interface SessionContext {
  readonly readers: ReaderChoice;
  readonly keyframes: KeyframeReads;
  /** The server's live tail. */
  readonly tail?: LiveTail | undefined;
  /** The server's cache of frame windows. */
  readonly windows?: WindowCache | undefined;
  readonly limits: PlayerLimits;
  /** Where the live edge stands on the primary. */
  readonly clock: LiveClock;
  readonly log: Logger;
  readonly metrics?: Metrics | undefined;
  /** The earliest stored time now (epoch ms; null with nothing stored): seeks below it are refused. */
  readonly earliest: () => Promise<number | null>;
}

/**
 * A replay session: the one way to drive its player (each control checked against the session's
 * range here) and the sockets attached to it.
 */
export class ReplaySession implements SessionOutput {
  readonly sinks = new Set<SessionSink>();
  private readonly player: Player;
  /** When the last socket left (epoch ms); undefined while one is attached. */
  idleSince: number | undefined = Date.now();
  readonly startedAt = Date.now();
  framesSent = 0;

  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly earliest: () => Promise<number | null>;

  constructor(
    readonly spec: SessionSpec,
    context: SessionContext,
  ) {
    this.log = context.log;
    this.metrics = context.metrics;
    this.earliest = context.earliest;
    this.player = new Player({
      readers: context.readers,
      keyframes: context.keyframes,
      output: this,
      range: { from: spec.from, to: spec.to },
      filter: spec.filter,
      start: { position: spec.position, speed: spec.speed },
      limits: context.limits,
      clock: context.clock,
      onError: (err) => this.log.error({ err, session: spec.id }, 'replay read failed'),
      onLateness: (ms) => this.metrics?.frameLateness.observe(ms / 1000),
      onSeek: (ms) => this.metrics?.seekSeconds.observe(ms / 1000),
      onLateCheck: () => this.metrics?.liveEdgeChecks.inc(),
      tail: context.tail,
      windows: context.windows,
    });
  }

  get id(): string {
    return this.spec.id;
  }

  /** Position, speed, whether it plays, and the epoch. */
  get state(): PlayerState {
    return this.player.state;
  }

  /** Plays on; with `until` (epoch ms, inside the session's range) it pauses exactly there. */
  play(until?: number): void {
    if (until === undefined) return this.player.play();
    const [from, to] = [usToMs(this.spec.from), usToMs(this.spec.to)];
    if (until < from || until > to) {
      throw new ReplayError(
        ErrorCode.OUT_OF_RANGE,
        `until must lie in the session's range, ${from} to ${to}`,
      );
    }
    this.player.play(msToUs(until));
  }

  pause(): void {
    this.player.pause();
  }

  /** A new epoch at `t` (epoch ms): inside the session's range, the stored window and the past. */
  async seek(t: number): Promise<void> {
    const earliest = Math.max((await this.earliest()) ?? 0, usToMs(this.spec.from));
    const latest = Math.min(usToMs(this.spec.to), Date.now());
    if (t < earliest || t > latest) {
      throw new ReplayError(ErrorCode.OUT_OF_RANGE, `t must lie between ${earliest} and ${latest}`);
    }
    this.player.seek(msToUs(t));
  }

  /** A new epoch where the session is, for a socket that joins it: its keyframe, then frames. */
  restart(): void {
    this.player.seek(this.player.state.position);
  }

  setSpeed(speed: Speed): void {
    this.player.setSpeed(speed);
  }

  /** Stops reading and sending, for good. */
  close(): void {
    this.player.close();
  }

  /** Closes the sockets of a session whose frames nobody has read for too long. */
  checkStuck(now: number): void {
    this.player.checkStuck(now);
  }

  attach(sink: SessionSink): void {
    this.sinks.add(sink);
    this.idleSince = undefined;
  }

  detach(sink: SessionSink): void {
    this.sinks.delete(sink);
    if (this.sinks.size === 0) this.idleSince = Date.now();
  }

  send(message: OutgoingMessage): void {
    if (message.type === 'frame') {
      this.framesSent += 1;
      this.metrics?.framesSent.inc();
      if (message.coalesced) this.metrics?.framesCoalesced.inc();
    }
    for (const sink of this.sinks) sink.send(message);
  }

  buffered(): number {
    let most = 0;
    for (const sink of this.sinks) most = Math.max(most, sink.buffered());
    return most;
  }

  stuck(): void {
    for (const sink of [...this.sinks]) {
      if (sink.buffered() > 0) sink.close(CloseCode.TOO_SLOW, 'client too slow: frames not read');
    }
  }
}
