import type { ChangeText } from './outgoing.js';
import type { DeltaWindow } from './deltas.js';
import type { Micros } from './micros.js';

/**
 * Changes read ahead of a paced session's clock, in play order. One read covers a couple of
 * seconds of wall time, and each tick's frame is cut from it, so a 1x session queries the
 * database about twice a second instead of every tick (with hundreds of sessions, the per-tick
 * query was the whole cost), and a frame is not held up by a query.
 */
export class ReadAhead {
  private changes: ChangeText[] = [];
  private next = 0;

  /**
   * @param forward the play direction the reads go in
   * @param reached the replay time the reads have covered up to (the position when empty)
   */
  constructor(
    readonly forward: boolean,
    private reached: Micros,
  ) {}

  /** Where the next read starts. */
  get readFrom(): Micros {
    return this.reached;
  }

  /** Whether the changes up to `target` are all here. */
  covers(target: Micros): boolean {
    return this.forward ? this.reached >= target : this.reached <= target;
  }

  /** Replay time still covered past `position`, in the play direction. */
  coveredPast(position: Micros): Micros {
    return this.forward ? this.reached - position : position - this.reached;
  }

  append(window: DeltaWindow): void {
    if (this.next > 0) {
      this.changes = this.changes.slice(this.next);
      this.next = 0;
    }
    for (const change of window.changes) this.changes.push(change);
    this.reached = window.reached;
  }

  /**
   * The changes up to `target` (forward: at or before it; reverse: after it, as those are the
   * ones undone on the way back), and the replay time they bring the state to: `target`, or
   * less far when the reads have not got there yet.
   */
  take(target: Micros): { changes: ChangeText[]; position: Micros } {
    const position = this.covers(target) ? target : this.reached;
    const start = this.next;
    while (this.next < this.changes.length) {
      const at = Math.round(this.changes[this.next]!.ts * 1000);
      if (this.forward ? at > position : at <= position) break;
      this.next += 1;
    }
    return { changes: this.changes.slice(start, this.next), position };
  }
}
