import type { OutgoingMessage } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/codes.js';
import type { Change, Speed } from '../../protocol/messages.js';
import { readDeltas, usToMs, type DeltaWindow, type Micros } from './deltas.js';
import { ReplayError } from './errors.js';
import type { EntityFilter, KeyframeEntity } from './keyframe.js';
import type { KeyframeReads } from './shared-keyframes.js';
import { LiveEdge } from './live.js';
import { ReadAhead } from './read-ahead.js';
import type { ReplayReader } from '../db/replicas.js';

/** A live session trails the wall clock by this much, so rows still being ingested are not outrun. */
export const LIVE_DELAY_MS = 1_000;
/** How often a session at the live edge looks for rows that arrived late. */
const LATE_CHECK_MS = 500;
/** Wait before a failed read is tried again. */
const RETRY_MS = 1_000;

/** Where a session's messages go: every attached socket. */
export interface SessionOutput {
  /** Queues a message on every attached socket; never dropped. */
  send(message: OutgoingMessage): void;
  /** Bytes waiting in the slowest attached socket. */
  buffered(): number;
  /** The slowest socket stayed over the high-water mark too long. */
  stuck(): void;
}

export interface PlayerLimits {
  /** Wall time between two frames at a finite speed. */
  readonly tickMs: number;
  /** Wall time of replay a paced session reads ahead of its clock (read again at half). */
  readonly readAheadMs: number;
  /** Events read ahead at most per window (bounded read-ahead). */
  readonly maxEventsPerRead: number;
  /** Buffered bytes over which frames are coalesced. */
  readonly highWaterBytes: number;
  /** Buffered bytes under which a coalesced frame is sent. */
  readonly lowWaterBytes: number;
  /** Entities held while coalescing; past it the clock stops advancing instead. */
  readonly maxPendingEntities: number;
  /** How long a socket may stay over the high-water mark before it is closed. */
  readonly stuckMs: number;
  readonly keyframeChunk: number;
}

export const DEFAULT_LIMITS: PlayerLimits = {
  tickMs: 100,
  readAheadMs: 2000,
  maxEventsPerRead: 2000,
  highWaterBytes: 1024 * 1024,
  lowWaterBytes: 256 * 1024,
  maxPendingEntities: 50_000,
  stuckMs: 30_000,
  keyframeChunk: 1000,
};

export interface PlayerState {
  readonly epoch: number;
  readonly position: Micros;
  readonly speed: Speed;
  readonly playing: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const isForward = (speed: Speed) => speed === 'max' || (typeof speed === 'number' && speed > 0);

/** Picks where replay reads go (the primary, or a replica holding data far enough). */
export interface ReaderChoice {
  readonly primary: ReplayReader;
  pick(current?: ReplayReader, needs?: number): ReplayReader;
  failed(reader: ReplayReader, err: unknown): void;
}

export interface PlayerOptions {
  readonly readers: ReaderChoice;
  readonly keyframes: KeyframeReads;
  readonly output: SessionOutput;
  readonly range: { readonly from: Micros; readonly to: Micros };
  readonly filter: EntityFilter;
  readonly start: { readonly position: Micros; readonly speed: Speed };
  readonly limits?: PlayerLimits;
  readonly onError?: (err: unknown) => void;
  /** How late each paced frame left against its tick (ms), for the lateness metric. */
  readonly onLateness?: (ms: number) => void;
  /** How long a seek took until its keyframe's last part was sent (ms), for the seek metric. */
  readonly onSeek?: (ms: number) => void;
}

/**
 * One session's replay clock and its reads. Each seek starts an epoch with its own abort signal:
 * the old epoch's reads stop and none of its messages is sent once the new epoch has begun.
 */
export class Player {
  private epoch = 0;
  private seq = 0;
  private position: Micros;
  private speed: Speed;
  private playing = false;
  private controller = new AbortController();
  private pending = new Map<string, Change>();
  private overSince: number | undefined;
  private achieved = 0;
  private closed = false;
  private keyframeSent = false;
  /** When the current epoch's seek began (performance.now()), for the seek latency metric. */
  private seekStartedAt = performance.now();
  private loopEpoch: number | undefined;
  /** Where a `play {until}` pauses; cleared by a pause, a seek or a turn of direction. */
  private until: Micros | undefined;
  /** The replay time of the last frame sent in this epoch. */
  private lastFrameAt: Micros | undefined;
  private readonly live: LiveEdge;
  private lateCheckedAt = 0;

  private readonly readers: ReaderChoice;
  private readonly keyframes: KeyframeReads;
  private readonly output: SessionOutput;
  private readonly range: { readonly from: Micros; readonly to: Micros };
  private readonly filter: EntityFilter;
  private readonly limits: PlayerLimits;
  private readonly onError: (err: unknown) => void;
  private readonly onLateness: (ms: number) => void;
  private readonly onSeek: (ms: number) => void;
  /** Where this session's replay reads go; kept while it stays in rotation. */
  private reader: ReplayReader | undefined;

  constructor(options: PlayerOptions) {
    this.readers = options.readers;
    this.keyframes = options.keyframes;
    this.output = options.output;
    this.range = options.range;
    this.filter = options.filter;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.onError = options.onError ?? (() => undefined);
    this.onLateness = options.onLateness ?? (() => undefined);
    this.onSeek = options.onSeek ?? (() => undefined);
    this.position = options.start.position;
    this.speed = options.start.speed;
    // Late rows are looked for on the primary: a replica may not have them yet.
    this.live = new LiveEdge(options.readers.primary.pool, options.filter);
  }

  /** Whether the range reaches the present, so that playing forward follows new events. */
  get followsLive(): boolean {
    return this.range.to > Date.now() * 1000 - LIVE_DELAY_MS * 1000;
  }

  get state(): PlayerState {
    return { epoch: this.epoch, position: this.position, speed: this.speed, playing: this.playing };
  }

  /** Starts a new epoch at t: keyframe in chunks, then frames if playing. */
  seek(t: Micros): void {
    this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.epoch += 1;
    this.seekStartedAt = performance.now();
    this.seq = 0;
    this.position = t;
    this.until = undefined;
    this.lastFrameAt = undefined;
    this.keyframeSent = false;
    this.pending.clear();
    this.keyframe(controller.signal).then(
      () => {
        if (controller.signal.aborted) return;
        this.keyframeSent = true;
        this.sendClock();
        this.ensureLoop();
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        this.failed(err);
        // Try the same epoch's position again, as a new epoch, unless something else happened meanwhile.
        setTimeout(() => {
          if (!controller.signal.aborted && !this.closed) this.seek(this.position);
        }, RETRY_MS).unref();
      },
    );
  }

  /**
   * Plays on; with `until` (inside the range, ahead in the direction of the speed) it pauses there
   * exactly, the last frame ending at `until`. Throws OUT_OF_RANGE for an `until` behind.
   */
  play(until?: Micros): void {
    if (until !== undefined) {
      const forward = isForward(this.speed);
      if (forward ? until < this.position : until > this.position) {
        throw new ReplayError(
          ErrorCode.OUT_OF_RANGE,
          `until ${usToMs(until)} is behind the position ${usToMs(this.position)} for a ${forward ? 'forward' : 'reverse'} speed`,
        );
      }
    }
    this.until = until;
    this.playing = true;
    this.sendClock();
    this.ensureLoop();
  }

  pause(): void {
    this.playing = false;
    this.until = undefined;
    this.sendClock();
  }

  setSpeed(speed: Speed): void {
    // A stop ahead in one direction is behind in the other.
    if (isForward(speed) !== isForward(this.speed)) this.until = undefined;
    this.speed = speed;
    // The achieved speed of the old setting says nothing about the new one.
    this.achieved = 0;
    this.sendClock();
  }

  close(): void {
    this.closed = true;
    this.playing = false;
    this.controller.abort();
  }

  /** One frame loop per epoch, started once its keyframe is out and while playing. */
  private ensureLoop(): void {
    if (!this.playing || !this.keyframeSent || this.loopEpoch === this.epoch || this.closed) return;
    const epoch = this.epoch;
    const signal = this.controller.signal;
    this.loopEpoch = epoch;
    this.frames(signal)
      .catch(async (err: unknown) => {
        if (signal.aborted) return;
        this.failed(err);
        await sleep(RETRY_MS);
      })
      .finally(() => {
        if (this.loopEpoch !== epoch) return;
        this.loopEpoch = undefined;
        // A play that came while this loop was winding down after a pause.
        if (!signal.aborted) this.ensureLoop();
      });
  }

  private async keyframe(signal: AbortSignal): Promise<void> {
    const epoch = this.epoch;
    const t = usToMs(this.position);
    let part = 0;
    let held: KeyframeEntity[] | undefined;
    // Mark where the log stands before reading, so rows committed during the keyframe are caught.
    // A live session reads its keyframe on the primary: late rows are found from that mark on,
    // and a replica could lack rows committed before it.
    const live = this.followsLive;
    if (live) await this.live.begin();
    if (signal.aborted) return;
    const reader = live ? this.readers.primary : this.pickReader(t);
    try {
      // One chunk is held back so that the last one sent can say last: true.
      for await (const chunk of this.keyframes.read(this.position, this.filter, {
        chunkSize: this.limits.keyframeChunk,
        signal,
        reader,
      })) {
        if (signal.aborted) return;
        if (held) this.output.send({ type: 'keyframe', epoch, t, part: part++, last: false, entities: held });
        held = chunk;
      }
    } catch (err) {
      this.readers.failed(reader, err);
      throw err;
    }
    if (signal.aborted) return;
    this.output.send({ type: 'keyframe', epoch, t, part, last: true, entities: held ?? [] });
    this.onSeek(performance.now() - this.seekStartedAt);
  }

  /**
   * The reader for data up to `t` (epoch ms): the session's own while it has it, another replica
   * or the primary otherwise. On a replica the live edge trails its replay position as it trails
   * the clock on the primary.
   */
  private pickReader(t: number): ReplayReader {
    this.reader = this.readers.pick(this.reader, t + LIVE_DELAY_MS);
    return this.reader;
  }

  /** Replay time up to which the session's reader holds every row that is on time. */
  private liveEdge(): Micros {
    return (Math.min(Date.now(), (this.reader ?? this.readers.primary).asOf()) - LIVE_DELAY_MS) * 1000;
  }

  private async frames(signal: AbortSignal): Promise<void> {
    let lastWall = Date.now();
    let clockWall = lastWall;
    let clockPosition = this.position;
    let ahead: ReadAhead | undefined;
    while (!signal.aborted && this.playing && !this.closed) {
      const max = this.speed === 'max' || this.speed === '-max';
      const forward = isForward(this.speed);
      if (max) await this.drained(signal);
      // Ticks keep their cadence: the time a read took comes off the wait.
      else await sleep(Math.max(0, lastWall + this.limits.tickMs - Date.now()));
      if (signal.aborted) return;
      const wall = Date.now();
      const elapsed = wall - lastWall;
      const due = lastWall + this.limits.tickMs;
      lastWall = wall;

      const behind = this.watchBackpressure(wall);
      if (behind && this.pending.size >= this.limits.maxPendingEntities) continue; // the clock waits
      const until = this.until;
      // Never behind the position: a seek may land past the edge, and the clock then waits there.
      const end = forward
        ? Math.max(this.position, Math.min(this.range.to, this.liveEdge(), until ?? Infinity))
        : Math.max(this.range.from, until ?? -Infinity);
      const step = max ? Infinity : elapsed * 1000 * Math.abs(this.speed as number);
      const target = forward ? Math.min(end, this.position + step) : Math.max(end, this.position - step);
      // At the live edge there is nothing to read yet; at full speed, do not spin.
      if (max && target === this.position) await sleep(this.limits.tickMs);
      if (target !== this.position) {
        let changes: Change[];
        if (max) {
          // Full speed reads window after window as the socket drains; nothing is read ahead.
          ahead = undefined;
          const window = await this.read(this.position, target);
          // Paused or superseded while reading: drop the window, the position has not moved.
          if (signal.aborted || !this.playing) return;
          this.position = window.reached;
          changes = window.changes;
        } else {
          if (ahead?.forward !== forward) ahead = new ReadAhead(forward, this.position);
          if (!ahead.covers(target)) {
            ahead.append(await this.read(ahead.readFrom, this.aheadOf(target, end, forward)));
            if (signal.aborted || !this.playing) return;
          }
          ({ changes, position: this.position } = ahead.take(target));
        }
        if (behind) this.coalesce(changes);
        else {
          this.flushPending();
          if (changes.length > 0) {
            this.sendFrame(changes, false);
            if (!max) this.onLateness(Math.max(0, Date.now() - due));
          }
        }
      }
      if (!behind) this.flushPending();
      // Top the read-ahead up after the frame is out, once less than half of it is left.
      const horizon = !max && ahead ? this.aheadOf(this.position, end, forward) : undefined;
      if (ahead && horizon !== undefined && !ahead.covers(horizon)) {
        if (ahead.coveredPast(this.position) < this.readAheadSpan() / 2) {
          ahead.append(await this.read(ahead.readFrom, horizon));
          if (signal.aborted || !this.playing) return;
        }
      }
      if (forward && this.followsLive && this.position >= end && wall - this.lateCheckedAt >= LATE_CHECK_MS) {
        this.lateCheckedAt = wall;
        const corrections = await this.live.corrections(this.position);
        if (signal.aborted || !this.playing) return;
        if (corrections.length > 0) {
          if (behind) this.coalesce(corrections);
          else this.sendFrame(corrections, false);
        }
      }

      if (wall - clockWall >= 1000) {
        this.achieved = usToMs(this.position - clockPosition) / (wall - clockWall);
        clockWall = wall;
        clockPosition = this.position;
        this.sendClock();
      }
      if (until !== undefined && this.position === until) {
        this.flushPending();
        // The state is exact at `until`: say so with a frame at it, even one without changes.
        if (this.lastFrameAt !== until) this.sendFrame([], false);
        this.playing = false;
        this.until = undefined;
        this.sendClock();
        return;
      }
      const atEnd = forward ? this.position >= this.range.to : this.position <= this.range.from;
      if (atEnd) {
        this.flushPending();
        this.playing = false;
        this.output.send({ type: 'end', epoch: this.epoch, t: usToMs(this.position) });
        this.sendClock();
        return;
      }
    }
  }

  /**
   * The changes from `from` to `to` (either direction), remembered for live-follow. Forward, the
   * read stops where the reader's data ends (the window then reaches less far).
   */
  private async read(from: Micros, to: Micros): Promise<DeltaWindow> {
    // Forward the window starts at `from`; reverse it ends there: either way the data must reach it.
    const reader = this.pickReader(usToMs(from));
    const until = to > from ? Math.max(from, Math.min(to, (reader.asOf() - LIVE_DELAY_MS) * 1000)) : to;
    if (until === from) return { changes: [], reached: from, ids: [] };
    let window: DeltaWindow;
    try {
      window = await readDeltas(reader.pool, from, until, this.filter, this.limits.maxEventsPerRead);
    } catch (err) {
      this.readers.failed(reader, err);
      throw err;
    }
    if (this.followsLive) this.live.remember(window.ids);
    return window;
  }

  /**
   * How far a paced read goes: readAheadMs of replay past `target`, not beyond `end`. A live
   * session keeps its reads a read-ahead span short of the live edge (never behind the clock):
   * rows may still commit there, and a read past the clock would miss them (late-row
   * corrections only run at the edge itself).
   */
  private aheadOf(target: Micros, end: Micros, forward: boolean): Micros {
    const span = this.readAheadSpan();
    if (!forward) return Math.max(end, target - span);
    if (this.followsLive) return Math.min(end, target + span, Math.max(target, end - span));
    return Math.min(end, target + span);
  }

  /** Replay time (µs) that readAheadMs of wall time covers at the current (finite) speed. */
  private readAheadSpan(): Micros {
    return this.limits.readAheadMs * 1000 * Math.abs(this.speed as number);
  }

  /** A read failed (database away, pool exhausted): the client hears of it; the caller retries. */
  private failed(err: unknown): void {
    this.onError(err);
    this.output.send({
      type: 'error',
      code: ErrorCode.UNAVAILABLE,
      message: `replay read failed, retrying: ${(err as Error).message}`,
    });
  }

  /**
   * A socket can stay stuck with nothing playing (paused, or stopped at the end of the range with
   * its last frames unread): the frame loop no longer looks, so housekeeping asks here.
   */
  checkStuck(now = Date.now()): void {
    if (!this.playing && !this.closed) this.watchBackpressure(now);
  }

  /** True while the slowest socket is over the high-water mark; closes it when stuck too long. */
  private watchBackpressure(wall: number): boolean {
    const buffered = this.output.buffered();
    if (buffered > this.limits.highWaterBytes) {
      this.overSince ??= wall;
      if (wall - this.overSince > this.limits.stuckMs) this.output.stuck();
      return true;
    }
    this.overSince = undefined;
    return buffered > this.limits.lowWaterBytes && this.pending.size > 0;
  }

  private async drained(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && this.output.buffered() > this.limits.lowWaterBytes) {
      this.watchBackpressure(Date.now());
      await sleep(10);
    }
    // Let other sessions' timers and sockets run between windows at full speed.
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Keeps only the latest change per entity, in an order that still applies correctly. */
  private coalesce(changes: Change[]): void {
    for (const change of changes) {
      if (change.op === 't') {
        for (const key of this.pending.keys())
          if (key.startsWith(`${change.table}|`)) this.pending.delete(key);
      }
      const key = `${change.table}|${change.id}`;
      this.pending.delete(key);
      this.pending.set(key, change);
    }
  }

  private flushPending(): void {
    if (this.pending.size === 0) return;
    const changes = [...this.pending.values()];
    this.pending.clear();
    this.sendFrame(changes, true);
  }

  private sendFrame(changes: Change[], coalesced: boolean): void {
    this.lastFrameAt = this.position;
    const frame = {
      type: 'frame' as const,
      epoch: this.epoch,
      seq: this.seq++,
      t: usToMs(this.position),
      changes,
    };
    this.output.send(coalesced ? { ...frame, coalesced: true } : frame);
  }

  private sendClock(): void {
    this.output.send({
      type: 'clock',
      epoch: this.epoch,
      t: usToMs(this.position),
      speed: this.speed,
      playing: this.playing,
      achievedSpeed: this.playing ? Math.round(this.achieved * 1000) / 1000 : 0,
    });
  }
}
