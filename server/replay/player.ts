import type { ChangeText, OutgoingMessage } from './outgoing.js';
import { ErrorCode } from '@msr/protocol/codes';
import type { Speed } from '@msr/protocol/messages';
import { readDeltas, type DeltaWindow } from './deltas.js';
import { usToMs, type Micros } from './micros.js';
import { ReplayError } from './errors.js';
import type { EntityFilter } from './entity-filter.js';
import type { KeyframeEntity } from './keyframe.js';
import type { KeyframeReads } from './shared-keyframes.js';
import { LiveEdge } from './live.js';
import type { LiveClock } from './live-clock.js';
import type { LateLookup, LiveTail, TailCorrections } from './live-tail.js';
import { ReadAhead } from './read-ahead.js';
import type { WindowCache } from './window-cache.js';
import type { ReplayReader } from '../db/replicas.js';
import { deleteTable, entityKey } from '@msr/protocol/core';

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
  /** Wall time of replay a paced session keeps read ahead of its clock (read again at half). */
  readonly readAheadMs: number;
  /**
   * Wall time of replay one paced read may cover where the history is sparse: a 1x session of a
   * quiet history then queries every half minute instead of every second.
   */
  readonly readAheadMaxMs: number;
  /** Events one paced read takes at most (what a session holds read ahead stays bounded). */
  readonly readAheadEvents: number;
  /** Events one read at full speed takes at most. */
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
  readAheadMaxMs: 30_000,
  readAheadEvents: 300,
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

/** A playing loop's own state between ticks. */
interface Loop {
  lastWall: number;
  /** Where and when the achieved speed was last measured. */
  clockWall: number;
  clockPosition: Micros;
  ahead?: ReadAhead | undefined;
  /**
   * Replay time a live session could not play because the edge held it back (the capture stores
   * in batches, so the edge moves in steps): played on once the edge moves, so that a 1x session
   * keeps up with the edge instead of falling back a step each time.
   */
  owed: Micros;
  /** The last tick ended at the live edge: the next one comes as soon as the edge moves. */
  atEdge: boolean;
}

interface Tick {
  readonly wall: number;
  /** Wall time since the previous tick (ms). */
  readonly elapsed: number;
  /** When this tick was due (ms), for the lateness metric. */
  readonly due: number;
  readonly max: boolean;
  readonly forward: boolean;
}

/** A live session this close to the edge (replay ms) asks for the server's live tail. */
const TAIL_NEAR_MS = 5_000;

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
  /** Where the live edge stands on the primary (the wall clock less LIVE_DELAY_MS, or the capture's). */
  readonly clock: LiveClock;
  readonly onError?: (err: unknown) => void;
  /** How late each paced frame left against its tick (ms), for the lateness metric. */
  readonly onLateness?: (ms: number) => void;
  /** How long a seek took until its keyframe's last part was sent (ms), for the seek metric. */
  readonly onSeek?: (ms: number) => void;
  /** Each late-row query the session makes itself, for the metric. */
  readonly onLateCheck?: () => void;
  /** The server's live tail: live sessions near the edge take their rows from it. */
  readonly tail?: LiveTail | undefined;
  /** The server's cache of frame windows, shared by its sessions. */
  readonly windows?: WindowCache | undefined;
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
  private pending = new Map<string, ChangeText>();
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
  private readonly clock: LiveClock;
  private readonly onError: (err: unknown) => void;
  private readonly onLateness: (ms: number) => void;
  private readonly onSeek: (ms: number) => void;
  /** Where this session's replay reads go; kept while it stays in rotation. */
  private reader: ReplayReader | undefined;
  /** The server's live tail, if it has one. */
  private readonly tail: LiveTail | undefined;
  private readonly windows: WindowCache | undefined;
  /** On the live tail: the tail's arrival count up to which late rows are settled. */
  private tailCursor: number | undefined;

  constructor(options: PlayerOptions) {
    this.readers = options.readers;
    this.keyframes = options.keyframes;
    this.output = options.output;
    this.range = options.range;
    this.filter = options.filter;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.clock = options.clock;
    this.onError = options.onError ?? (() => undefined);
    this.onLateness = options.onLateness ?? (() => undefined);
    this.onSeek = options.onSeek ?? (() => undefined);
    this.tail = options.tail;
    this.windows = options.windows;
    this.position = options.start.position;
    this.speed = options.start.speed;
    // Late rows are looked for on the primary: a replica may not have them yet.
    this.live = new LiveEdge(options.readers.primary.pool, options.filter, options.onLateCheck);
  }

  /** Whether the range reaches the present, so that playing forward follows new events. */
  get followsLive(): boolean {
    return this.range.to > this.clock.edge();
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
    this.tailCursor = undefined;
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
    this.reader = this.readers.pick(this.reader, t + this.clock.delayMs);
    return this.reader;
  }

  /** Replay time up to which the session's reader holds every row that is on time. */
  private liveEdge(): Micros {
    const reader = this.reader ?? this.readers.primary;
    if (reader === this.readers.primary) return this.clock.edge();
    return (Math.min(Date.now(), reader.asOf()) - this.clock.delayMs) * 1000;
  }

  /** Plays tick by tick until paused, superseded, at `until` or at the end of the range. */
  private async frames(signal: AbortSignal): Promise<void> {
    const loop: Loop = {
      lastWall: Date.now(),
      clockWall: Date.now(),
      clockPosition: this.position,
      owed: 0,
      atEdge: false,
    };
    const stale = () => signal.aborted || !this.playing;
    try {
      while (!signal.aborted && this.playing && !this.closed) {
        const tick = await this.nextTick(signal, loop);
        if (signal.aborted) return;
        const behind = this.watchBackpressure(tick.wall);
        if (behind && this.pending.size >= this.limits.maxPendingEntities) continue; // the clock waits
        await this.followTail(loop, tick);
        if (stale()) return;
        const end = this.endOf(tick.forward);
        const changes = await this.advance(loop, tick, end);
        if (stale()) return;
        if (changes) this.deliver(changes, behind, tick);
        if (!behind) this.flushPending();
        await this.topUp(loop, tick, end);
        if (stale()) return;
        await this.correctLate(tick, end, behind);
        if (stale()) return;
        this.reportAchieved(loop, tick.wall);
        if (this.stopsHere(tick.forward)) return;
      }
    } finally {
      // A seek starts over from its keyframe; a pause or a stop leaves the tail with all settled.
      if (this.tailCursor !== undefined && !signal.aborted) await this.leaveTail();
    }
  }

  /** Waits for the next tick (at full speed: for the socket to drain) and says what it is. */
  private async nextTick(signal: AbortSignal, loop: Loop): Promise<Tick> {
    const max = this.speed === 'max' || this.speed === '-max';
    if (max) await this.drained(signal);
    // Ticks keep their cadence: the time a read took comes off the wait.
    else await this.waitAtEdge(loop.atEdge, Math.max(0, loop.lastWall + this.limits.tickMs - Date.now()));
    const wall = Date.now();
    const tick = {
      wall,
      elapsed: wall - loop.lastWall,
      due: loop.lastWall + this.limits.tickMs,
      max,
      forward: isForward(this.speed),
    };
    loop.lastWall = wall;
    return tick;
  }

  /** Where this tick may go: the range's end, `until`, and forward the live edge (never behind the position). */
  private endOf(forward: boolean): Micros {
    if (!forward) return Math.max(this.range.from, this.until ?? -Infinity);
    const edge =
      this.tailCursor !== undefined ? Math.min(this.liveEdge(), this.tail!.reached) : this.liveEdge();
    // A seek may land past the edge: the clock then waits there.
    return Math.max(this.position, Math.min(this.range.to, edge, this.until ?? Infinity));
  }

  /** Moves the position toward `end` by this tick's share; the changes passed, or none when it stays. */
  private async advance(loop: Loop, tick: Tick, end: Micros): Promise<ChangeText[] | undefined> {
    const live = tick.forward && this.followsLive;
    const step = tick.max ? Infinity : tick.elapsed * 1000 * Math.abs(this.speed as number) + loop.owed;
    const target = tick.forward ? Math.min(end, this.position + step) : Math.max(end, this.position - step);
    loop.atEdge = live && target === end;
    // Held back by the edge for at most LIVE_DELAY_MS of wall time: it never trails the clock more.
    loop.owed =
      loop.atEdge && !tick.max
        ? Math.min(this.position + step - target, this.clock.delayMs * 1000 * Math.abs(this.speed as number))
        : 0;
    // At the live edge there is nothing to read yet; at full speed, do not spin (on the tail too:
    // it is read from memory, and a drained socket would let the loop run flat out).
    if (tick.max && target === this.position) await this.waitAtEdge(live, this.limits.tickMs);
    // On the tail, late rows are settled every tick, whether the position moves or not.
    if (this.tailCursor !== undefined) return this.fromTail(target);
    if (target === this.position) return undefined;
    if (tick.max) {
      // Full speed reads window after window as the socket drains; nothing is read ahead.
      loop.ahead = undefined;
      const window = await this.read(this.position, target, this.limits.maxEventsPerRead);
      // Paused or superseded while reading: drop the window, the position has not moved.
      if (!this.playing) return undefined;
      this.position = window.reached;
      return window.changes;
    }
    if (loop.ahead?.forward !== tick.forward) loop.ahead = new ReadAhead(tick.forward, this.position);
    if (!loop.ahead.covers(target)) {
      loop.ahead.append(
        await this.read(
          loop.ahead.readFrom,
          this.aheadOf(target, end, tick.forward),
          this.limits.readAheadEvents,
        ),
      );
      if (!this.playing) return undefined;
    }
    const taken = loop.ahead.take(target);
    this.position = taken.position;
    return taken.changes;
  }

  /** Waits `ms`; at the edge on the live tail, only until the tail holds more. */
  private waitAtEdge(atEdge: boolean, ms: number): Promise<unknown> {
    return atEdge && this.tailCursor !== undefined ? this.tail!.nextAdvance(ms) : sleep(ms);
  }

  /** Sends a tick's changes (a paced tick's lateness is measured), or holds them while the socket is behind. */
  private deliver(changes: ChangeText[], behind: boolean, tick?: Tick): void {
    if (behind) return this.coalesce(changes);
    this.flushPending();
    if (changes.length === 0) return;
    this.sendFrame(changes, false);
    if (tick && !tick.max) this.onLateness(Math.max(0, Date.now() - tick.due));
  }

  /** Tops the read-ahead up after the frame is out, once less than half of it is left. */
  private async topUp(loop: Loop, tick: Tick, end: Micros): Promise<void> {
    const ahead = loop.ahead;
    if (tick.max || !ahead) return;
    const horizon = this.aheadOf(this.position, end, tick.forward);
    if (ahead.covers(horizon) || ahead.coveredPast(this.position) >= this.readAheadSpan() / 2) return;
    ahead.append(await this.read(ahead.readFrom, horizon, this.limits.readAheadEvents));
  }

  /**
   * Rows that committed after the session passed their time, sent as the exact state at the
   * position, found by the session's own query at the live edge (every LATE_CHECK_MS). On the
   * live tail they come with the tail's rows instead.
   */
  private async correctLate(tick: Tick, end: Micros, behind: boolean): Promise<void> {
    if (this.tailCursor !== undefined || !tick.forward || !this.followsLive || this.position < end) return;
    if (tick.wall - this.lateCheckedAt < LATE_CHECK_MS) return;
    this.lateCheckedAt = tick.wall;
    const corrections = await this.live.corrections(this.position);
    if (corrections.length === 0 || !this.playing) return;
    if (behind) this.coalesce(corrections);
    else this.sendFrame(corrections, false);
  }

  /** The achieved speed, measured over about a second and sent with the clock. */
  private reportAchieved(loop: Loop, wall: number): void {
    if (wall - loop.clockWall < 1000) return;
    this.achieved = usToMs(this.position - loop.clockPosition) / (wall - loop.clockWall);
    loop.clockWall = wall;
    loop.clockPosition = this.position;
    this.sendClock();
  }

  /** At `until` the session pauses there; at the end of the range it ends. True when either happened. */
  private stopsHere(forward: boolean): boolean {
    const until = this.until;
    if (until !== undefined && this.position === until) {
      this.flushPending();
      // The state is exact at `until`: say so with a frame at it, even one without changes.
      if (this.lastFrameAt !== until) this.sendFrame([], false);
      this.playing = false;
      this.until = undefined;
      this.sendClock();
      return true;
    }
    const atEnd = forward ? this.position >= this.range.to : this.position <= this.range.from;
    if (!atEnd) return false;
    this.flushPending();
    this.playing = false;
    this.output.send({ type: 'end', epoch: this.epoch, t: usToMs(this.position) });
    this.sendClock();
    return true;
  }

  /**
   * A live session near the edge takes its rows from the server's live tail once the tail holds
   * its position; joining, it first settles what came late for its own reads. It leaves the tail
   * when it turns back or falls behind what the tail holds (and when it stops playing).
   */
  private async followTail(loop: Loop, tick: Tick): Promise<void> {
    const tail = this.tail;
    if (!tail) return;
    const live = tick.forward && this.followsLive;
    if (live && this.position >= this.liveEdge() - TAIL_NEAR_MS * 1000) tail.want();
    const held = live && tail.start <= this.position;
    if (this.tailCursor === undefined && held) {
      this.tailCursor = tail.arrival;
      loop.ahead = undefined;
      const corrections = await this.live.corrections(this.position);
      if (corrections.length > 0 && this.playing)
        this.deliver(corrections, this.watchBackpressure(Date.now()));
    } else if (this.tailCursor !== undefined && !held) {
      await this.leaveTail();
    }
  }

  /**
   * From here the session's own queries look for late rows again, from a new mark; whatever came
   * late before the mark is taken from the tail's next look, so nothing falls between the two.
   */
  private async leaveTail(): Promise<void> {
    const epoch = this.epoch;
    await this.live.begin();
    this.tail!.want();
    await this.tail!.nextLateCheck();
    if (this.epoch !== epoch || this.tailCursor === undefined) return;
    const settled = this.settleTail();
    this.tailCursor = undefined;
    const corrections = [...settled.changes, ...(await this.lookUp(settled.lookups))];
    if (corrections.length > 0 && this.epoch === epoch)
      this.deliver(corrections, this.watchBackpressure(Date.now()));
  }

  /**
   * One tick on the tail: the late rows since the cursor settled at the position, then the rows
   * up to `target`, both from one look at the tail (nothing can arrive between the two).
   */
  private async fromTail(target: Micros): Promise<ChangeText[]> {
    const settled = this.settleTail();
    const { changes } = this.tail!.changes(this.position, target, this.filter);
    this.position = target;
    // What the tail cannot settle from memory is looked up at the new position, after the frame's rows.
    return [...settled.changes, ...changes, ...(await this.lookUp(settled.lookups))];
  }

  private settleTail(): TailCorrections {
    const tail = this.tail!;
    const since = this.tailCursor!;
    this.tailCursor = tail.arrival;
    if (this.tailCursor === since) return { changes: [], lookups: [] };
    // Rows the session read itself before it joined the tail are not sent again.
    return tail.corrections(since, this.position, this.filter, (id) => this.live.hasSent(id));
  }

  private async lookUp(lookups: readonly LateLookup[]): Promise<ChangeText[]> {
    if (lookups.length === 0) return [];
    return this.live.exactStates(
      this.position,
      lookups.map((l) => ({ event_id: l.id, table: l.table, id: l.entity, op: l.op })),
    );
  }

  /**
   * The changes from `from` to `to` (either direction), remembered for live-follow: from the
   * server's window cache when another session has just read them, else from the database.
   */
  private async read(from: Micros, to: Micros, limit: number): Promise<DeltaWindow> {
    const window = this.windows
      ? await this.windows.read(from, to, this.filter, limit, () => this.readDatabase(from, to, limit))
      : await this.readDatabase(from, to, limit);
    if (this.followsLive) this.live.remember(window.ids);
    return window;
  }

  /** One window from the database. Forward, it stops where the reader's data ends (reaching less far). */
  private async readDatabase(from: Micros, to: Micros, limit: number): Promise<DeltaWindow> {
    // Forward the window starts at `from`; reverse it ends there: either way the data must reach it.
    const reader = this.pickReader(usToMs(from));
    // The live edge is the reader's just picked: forward, the window stops where its data does.
    const until = to > from ? Math.max(from, Math.min(to, this.liveEdge())) : to;
    if (until === from) return { changes: [], reached: from, ids: [] };
    try {
      return await readDeltas(reader.pool, from, until, this.filter, limit);
    } catch (err) {
      this.readers.failed(reader, err);
      throw err;
    }
  }

  /**
   * How far a paced read may go: readAheadMaxMs of replay past `target` (the events limit cuts a
   * dense stretch shorter), not beyond `end`. A live session keeps its reads a read-ahead span
   * short of the live edge (never behind the clock): rows may still commit there, and a read past
   * the clock would miss them (late-row corrections only run at the edge itself).
   */
  private aheadOf(target: Micros, end: Micros, forward: boolean): Micros {
    const span = this.limits.readAheadMaxMs * 1000 * Math.abs(this.speed as number);
    if (!forward) return Math.max(end, target - span);
    if (this.followsLive) return Math.min(end, target + span, Math.max(target, end - this.readAheadSpan()));
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
  private coalesce(changes: ChangeText[]): void {
    for (const change of changes) {
      if (change.op === 't') deleteTable(this.pending, change.table);
      const key = entityKey(change.table, change.id);
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

  private sendFrame(changes: ChangeText[], coalesced: boolean): void {
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
