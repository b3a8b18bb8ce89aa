import type { OutgoingMessage } from './outgoing.js';
import type { Logger } from 'pino';
import type { Speed } from '@msr/protocol/messages';
import type { Micros } from './deltas.js';
import type { EntityFilter } from './entity-filter.js';
import type { Metrics } from '../metrics.js';
import type { KeyframeReads } from './shared-keyframes.js';
import type { LiveTail } from './live-tail.js';
import { Player, type PlayerLimits, type ReaderChoice, type SessionOutput } from './player.js';

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
  readonly limits: PlayerLimits;
  readonly log: Logger;
  /** Close code for a socket that does not read its frames. */
  readonly tooSlowCode: number;
  readonly metrics?: Metrics | undefined;
}

/** A replay session: its player and the sockets attached to it. */
export class ReplaySession implements SessionOutput {
  readonly sinks = new Set<SessionSink>();
  readonly player: Player;
  /** When the last socket left (epoch ms); undefined while one is attached. */
  idleSince: number | undefined = Date.now();
  readonly startedAt = Date.now();
  framesSent = 0;

  private readonly log: Logger;
  private readonly tooSlowCode: number;
  private readonly metrics: Metrics | undefined;

  constructor(
    readonly spec: SessionSpec,
    context: SessionContext,
  ) {
    this.log = context.log;
    this.tooSlowCode = context.tooSlowCode;
    this.metrics = context.metrics;
    this.player = new Player({
      readers: context.readers,
      keyframes: context.keyframes,
      output: this,
      range: { from: spec.from, to: spec.to },
      filter: spec.filter,
      start: { position: spec.position, speed: spec.speed },
      limits: context.limits,
      onError: (err) => this.log.error({ err, session: spec.id }, 'replay read failed'),
      onLateness: (ms) => this.metrics?.frameLateness.observe(ms / 1000),
      onSeek: (ms) => this.metrics?.seekSeconds.observe(ms / 1000),
      onLateCheck: () => this.metrics?.liveEdgeChecks.inc(),
      tail: context.tail,
    });
  }

  get id(): string {
    return this.spec.id;
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
      if (sink.buffered() > 0) sink.close(this.tooSlowCode, 'client too slow: frames not read');
    }
  }
}
