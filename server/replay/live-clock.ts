import type { Micros } from './micros.js';

/**
 * Source commits whose timestamps and WAL order disagree: a backend takes its commit time just
 * before it writes its commit record, so a commit stamped a little earlier can follow in the
 * stream. While changes flow the edge keeps this far behind the last stored commit; rows later
 * than that still reach live sessions, as late-row corrections.
 */
const REORDER_MARGIN_US = 10_000;
/** Once the clock is this far past the last stored commit, the edge goes up to it (the stream went quiet). */
const SETTLED_MS = 100;

/**
 * Where the live edge stands on the primary, one per process: the replay time up to which every
 * row that is on time is stored. Without more knowledge that is the wall clock less LIVE_DELAY_MS.
 * The built-in capture of this process knows more: the slot sends its source's transactions in
 * commit order, so once a batch is committed in MSR's database every change committed up to its
 * last commit is stored, and the edge moves there (tens of ms behind the source instead of the
 * delay). Readers are told each time it moves, so the live tail reads at once.
 */
export class LiveClock {
  private storedUs: Micros = -Infinity;
  private readonly listeners = new Set<() => void>();

  constructor(
    /** How far the edge trails the wall clock when nothing else is known (LIVE_DELAY_MS). */
    readonly delayMs: number,
  ) {}

  /** Replay time (µs) up to which the primary holds every row that is on time. */
  edge(now = Date.now()): Micros {
    return Math.max(
      (now - this.delayMs) * 1000,
      this.storedUs - REORDER_MARGIN_US,
      Math.min(this.storedUs, (now - SETTLED_MS) * 1000),
    );
  }

  /** The capture has committed every change of its source up to the commit at `commitUs`. */
  stored(commitUs: Micros): void {
    if (commitUs <= this.storedUs) return;
    this.storedUs = commitUs;
    for (const listener of this.listeners) listener();
  }

  /** Calls `listener` each time the edge moves on ahead of the clock; returns the unsubscribe. */
  onStored(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
