import type { Pool } from 'pg';

/** How far back (wall time) rows are looked for again, for transactions that commit late. */
export const LATE_WINDOW_MS = 30_000;

// The sequence's position, not max(id): it also covers ids of transactions still in flight.
const SEQUENCE_SQL = `select case when is_called then last_value else last_value - 1 end::text as last
                        from msr.cdc_event_id_seq`;

/**
 * Where msr.cdc_event's id sequence stood over the last LATE_WINDOW_MS: rows with ids after the
 * floor (the mark as of the window's start) are the ones a late-row check looks at again.
 */
export class SequenceMarks {
  private readonly marks: { wall: number; lastId: string }[] = [];

  constructor(private readonly pool: Pool) {}

  get empty(): boolean {
    return this.marks.length === 0;
  }

  /** The oldest mark kept; ids at or before it are never checked again. */
  get oldest(): string | undefined {
    return this.marks[0]?.lastId;
  }

  async mark(): Promise<void> {
    const { rows } = await this.pool.query<{ last: string }>(SEQUENCE_SQL);
    this.marks.push({ wall: Date.now(), lastId: rows[0]!.last });
  }

  /** The last id as of LATE_WINDOW_MS ago (or the first mark): rows after it are checked. */
  floor(): string {
    const cutoff = Date.now() - LATE_WINDOW_MS;
    let floor = this.marks[0]!.lastId;
    for (const m of this.marks) if (m.wall <= cutoff) floor = m.lastId;
    return floor;
  }

  /** Drops marks the floor can no longer be taken from. */
  prune(): void {
    while (this.marks.length > 1 && this.marks[1]!.wall <= Date.now() - LATE_WINDOW_MS) this.marks.shift();
  }

  clear(): void {
    this.marks.length = 0;
  }
}
