/** Ids skipped by the reads that are listed one by one; past it a late-row check looks at every id. */
const MAX_HOLES = 50_000;

/** Where a late-row check must look: ids after `after`, and the ones in `holes`. */
export interface Unseen {
  readonly after: string;
  readonly holes: string[];
}

/**
 * The msr.cdc_event ids the live tail has read. A row that commits after the tail read past its
 * time can only have an id above the highest read, or one the reads skipped (a hole: in flight
 * then, rolled back, or a redelivered row that stored nothing), so a late-row check asks for those
 * alone instead of every row of the late window again (at 2,000 rows/s, 60,000 rows every check).
 */
export class SeenIds {
  /** Each id read, with the wall time it was read. */
  private readonly seen = new Map<string, number>();
  private highest = -1n;
  private readonly holes = new Set<bigint>();
  /** Too many holes to list, up to this id: checks look at every id after the floor until it passes. */
  private overflowUpTo: bigint | undefined;

  /** Ids up to `mark` are not looked at (the tail starts there). */
  start(mark: string): void {
    this.highest = BigInt(mark);
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  add(id: string, wall: number): void {
    this.seen.set(id, wall);
    const n = BigInt(id);
    if (n <= this.highest) {
      this.holes.delete(n);
      return;
    }
    if (n - this.highest - 1n > BigInt(MAX_HOLES - this.holes.size)) this.overflowUpTo = n;
    else for (let hole = this.highest + 1n; hole < n; hole++) this.holes.add(hole);
    this.highest = n;
  }

  /** What a late-row check looks at, given that ids up to `floor` are settled. */
  unseen(floor: string): Unseen {
    const settled = BigInt(floor);
    if (this.overflowUpTo !== undefined) return { after: floor, holes: [] };
    const holes: string[] = [];
    for (const hole of this.holes) if (hole > settled) holes.push(String(hole));
    return { after: String(this.highest > settled ? this.highest : settled), holes };
  }

  /** Forgets holes at or below `floor` and ids read before `wallCutoff`. */
  prune(floor: string, wallCutoff: number): void {
    const settled = BigInt(floor);
    for (const hole of this.holes) if (hole <= settled) this.holes.delete(hole);
    if (this.overflowUpTo !== undefined && this.overflowUpTo <= settled) this.overflowUpTo = undefined;
    for (const [id, at] of this.seen) if (at < wallCutoff) this.seen.delete(id);
  }

  clear(): void {
    this.seen.clear();
    this.holes.clear();
    this.highest = -1n;
    this.overflowUpTo = undefined;
  }
}
