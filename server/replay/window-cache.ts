import type { ChangeText } from './outgoing.js';
import type { DeltaWindow } from './deltas.js';
import type { EntityFilter } from './entity-filter.js';
import type { Micros } from './micros.js';

export interface WindowCacheOptions {
  /** Changes held at most, over every window (the oldest windows go first). */
  readonly maxChanges: number;
  /**
   * How long a window read is served to other sessions (ms of wall time): no longer than a
   * session's own read-ahead may hold what it read (the server passes PlayerLimits.readAheadMaxMs).
   */
  readonly ttlMs: number;
  /**
   * Only windows ending at least this long (ms) before the wall clock are kept: rows may still
   * commit behind the live edge, and those are for each session's own late-row checks to find.
   */
  readonly settledMs: number;
}

/** The cache's bounds apart from its lifetime, which the server takes from the read-ahead. */
export const WINDOW_CACHE_BOUNDS: Omit<WindowCacheOptions, 'ttlMs'> = {
  maxChanges: 100_000,
  settledMs: 60_000,
};

/** Every change of one filter in (from, reached], as one forward read returned them. */
interface Segment {
  readonly key: string;
  readonly from: Micros;
  readonly reached: Micros;
  /** Event time (µs) of each change, ascending. */
  readonly at: readonly Micros[];
  readonly changes: readonly ChangeText[];
  readonly ids: readonly string[];
  readonly readAt: number;
}

export type WindowRead = () => Promise<DeltaWindow>;

/** A read of the database under way for one session, which others may wait for. */
interface Flight {
  readonly key: string;
  readonly from: Micros;
  readonly to: Micros;
  readonly reading: Promise<DeltaWindow>;
}

/**
 * Forward frame windows read by one session, served to the server's other sessions with the same
 * filter whose position falls inside them: sessions reviewing the same stretch of history at
 * nearby positions (a team on one incident) then share one read instead of making one each, and
 * a session whose position falls inside a read under way waits for it (single flight). A served
 * window holds exactly what a read of the database gave for that span ttlMs ago at most, as a
 * session's own read-ahead may, so frames stay equal to the SQL definition.
 */
export class WindowCache {
  /** In the order they were read, so the oldest are at the front. */
  private readonly segments: Segment[] = [];
  private readonly inFlight: Flight[] = [];
  private held = 0;

  constructor(
    private readonly options: WindowCacheOptions,
    /** Each forward read asked of the cache: served from memory, or read from the database. */
    private readonly onRead: (hit: boolean) => void = () => undefined,
  ) {}

  /** Changes held now, over every window. */
  get size(): number {
    return this.held;
  }

  /**
   * The changes in (from, to], at most about `limit` (never stopping inside a group of events with
   * the same time), from memory when a kept window holds `from`, else by `read` (whose window is
   * kept for others). Reverse reads are not cached: they go straight to `read`.
   */
  async read(
    from: Micros,
    to: Micros,
    filter: EntityFilter,
    limit: number,
    read: WindowRead,
  ): Promise<DeltaWindow> {
    if (to <= from) return read();
    const key = filterKey(filter);
    // A read under way from at or before `from` and going past it will most likely hold it.
    const pending = this.inFlight.find((f) => f.key === key && f.from <= from && from < f.to);
    if (pending) await pending.reading.catch(() => undefined);
    const served = this.serve(key, from, to, limit);
    this.onRead(served !== undefined);
    if (served) return served;
    const flight: Flight = { key, from, to, reading: read() };
    this.inFlight.push(flight);
    try {
      const window = await flight.reading;
      this.keep(key, from, window);
      return window;
    } finally {
      this.inFlight.splice(this.inFlight.indexOf(flight), 1);
    }
  }

  private serve(key: string, from: Micros, to: Micros, limit: number): DeltaWindow | undefined {
    const now = Date.now();
    let best: Segment | undefined;
    for (const segment of this.segments) {
      if (segment.key !== key || now - segment.readAt > this.options.ttlMs) continue;
      if (segment.from <= from && from < segment.reached && (!best || segment.reached > best.reached))
        best = segment;
    }
    if (!best) return undefined;
    const end = Math.min(to, best.reached);
    const first = firstAfter(best.at, from);
    let last = firstAfter(best.at, end);
    let reached = end;
    if (last - first > limit) {
      // As a read of the database does: finish the group of events at the limit's time, stop there.
      last = first + limit;
      reached = best.at[last - 1]!;
      while (last < best.at.length && best.at[last] === reached) last++;
    }
    return { changes: best.changes.slice(first, last), reached, ids: best.ids.slice(first, last) };
  }

  private keep(key: string, from: Micros, window: DeltaWindow): void {
    const now = Date.now();
    if (window.reached <= from || window.reached > (now - this.options.settledMs) * 1000) return;
    if (window.changes.length !== window.ids.length || window.changes.length > this.options.maxChanges)
      return;
    const at = window.changes.map((c) => Math.round(c.ts * 1000));
    const segment: Segment = {
      key,
      from,
      reached: window.reached,
      at,
      changes: window.changes,
      ids: window.ids,
      readAt: now,
    };
    this.evict(now, this.options.maxChanges - segment.changes.length);
    this.segments.push(segment);
    this.held += segment.changes.length;
  }

  /** Drops expired windows, then the oldest until at most `room` changes are held. */
  private evict(now: number, room: number): void {
    while (this.segments.length > 0) {
      const oldest = this.segments[0]!;
      if (now - oldest.readAt <= this.options.ttlMs && this.held <= room) break;
      this.segments.shift();
      this.held -= oldest.changes.length;
    }
  }
}

/** One key per filter: the same tables and entities in any order share windows. */
function filterKey(filter: EntityFilter): string {
  const sorted = (values: readonly string[] | undefined) => (values ? [...values].sort() : null);
  return JSON.stringify([sorted(filter.tables), sorted(filter.entities)]);
}

/** Index of the first value greater than `t` in ascending `at`. */
function firstAfter(at: readonly Micros[], t: Micros): number {
  let lo = 0;
  let hi = at.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
