import type { Pool } from 'pg';
import { stateOf, type ChangeText } from './outgoing.js';
import { filterMatches, type EntityFilter } from './entity-filter.js';
import { sqlAt, sqlMicros, type Micros } from './micros.js';
import { LATE_WINDOW_MS, SequenceMarks } from './sequence-marks.js';
import type { LiveClock } from './live-clock.js';
import { SeenIds } from './seen-ids.js';
import { qualifiedTable } from '../db/sql-fragments.js';
import { entityKey } from '@msr/protocol/core';

/** How often the tail reads what became visible at the live edge. */
const POLL_MS = 100;
/**
 * The least time between two reads when the capture moves the edge sooner: at most 20 reads a
 * second, and as many frames a second for each session waiting at the edge (10 on the interval).
 */
const MIN_POLL_GAP_MS = 50;
/** How often it looks for rows that committed after the edge passed their time. */
const LATE_CHECK_MS = 500;
/** Replay time kept behind the edge, so sessions a little behind it read from memory too. */
const KEEP_MS = 10_000;
/** Rows one poll reads at most; a burst is read over several polls. */
const POLL_ROWS = 20_000;
/** With no session on it for this long, the tail stops reading and forgets what it held. */
const IDLE_MS = 5_000;

/** A change as the tail holds it: its replay-order keys, and the read that brought it. */
interface TailRow {
  readonly id: string;
  readonly tsUs: Micros;
  readonly lsn: string;
  readonly offset: string;
  readonly change: ChangeText;
  /** The tail's arrival count when the row was read: later ones are late for a session. */
  readonly arrival: number;
}

interface StoredRow {
  id: string;
  ts_us: string;
  lsn: string;
  kafka_offset: string;
  table: string;
  entity: string;
  op: ChangeText['op'];
  after: string | null;
}

/** A late row a session must look up itself: a truncate, or older than the rows kept. */
export interface LateLookup {
  readonly id: string;
  readonly table: string;
  readonly entity: string;
  readonly op: ChangeText['op'];
  readonly tsUs: Micros;
}

export interface TailCorrections {
  /** Exact states at the position, from the rows held. */
  readonly changes: ChangeText[];
  /** Late rows the tail cannot settle from memory. */
  readonly lookups: LateLookup[];
}

const COLUMNS = `e.id::text as id, ${sqlMicros('e.event_timestamp')} as ts_us,
       coalesce(e.lsn, -1)::text as lsn, coalesce(e.kafka_offset, -1)::text as kafka_offset,
       ${qualifiedTable('e')} as "table", e.entity_id as entity, e.op, e.after::text as after`;

const WINDOW_SQL = `
  select ${COLUMNS}
    from msr.cdc_event e
   where e.event_timestamp > ${sqlAt('$1')} and e.event_timestamp <= ${sqlAt('$2')}
   order by e.event_timestamp, coalesce(e.lsn, -1), coalesce(e.kafka_offset, -1), e.id
   limit ${POLL_ROWS}`;

// Only ids the tail has not read (SeenIds): after the highest, or skipped below it.
const LATE_SQL = `
  select ${COLUMNS}
    from msr.cdc_event e
   where (e.id > $1::bigint or e.id = any($2::bigint[])) and e.event_timestamp <= ${sqlAt('$3')}
   order by e.event_timestamp, coalesce(e.lsn, -1), coalesce(e.kafka_offset, -1), e.id`;

/** Decimal texts of non-negative integers (or -1) compared as numbers, without BigInt per row. */
function compareDecimal(a: string, b: string): number {
  if (a === b) return 0;
  const [na, nb] = [a.startsWith('-'), b.startsWith('-')];
  if (na !== nb) return na ? -1 : 1;
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : 1;
}

/** Replay order: time, then LSN, Kafka offset and id (as the SQL definition orders them). */
function replayOrder(a: TailRow, b: TailRow): number {
  return (
    a.tsUs - b.tsUs ||
    compareDecimal(a.lsn, b.lsn) ||
    compareDecimal(a.offset, b.offset) ||
    compareDecimal(a.id, b.id)
  );
}

/**
 * The live edge of one server, read once for all its live-follow sessions: every POLL_MS the rows
 * that became visible up to the edge, every LATE_CHECK_MS the rows that committed after the edge
 * passed their time (found by id, as the per-session live edge finds them). The last KEEP_MS of
 * replay time is held in replay order, each row with the count of the read that brought it, so a
 * session takes its frames from memory and knows which rows came late for it.
 *
 * The edge is the process's LiveClock, as each session's would be. When the capture moves it,
 * the tail reads at once (at most every MIN_POLL_GAP_MS) and wakes the sessions waiting there.
 */
export class LiveTail {
  private rows: TailRow[] = [];
  /** The rows held, in the order they arrived. */
  private arrived: TailRow[] = [];
  private readonly byEntity = new Map<string, TailRow[]>();
  private readonly seen = new SeenIds();
  private readonly marks: SequenceMarks;
  private readonly old: (LateLookup & { arrival: number; wall: number })[] = [];
  private startUs: Micros = Infinity;
  private reachedUs: Micros = -Infinity;
  private arrivals = 0;
  private lateCheckedAt = 0;
  private wantedAt = 0;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly waiting: (() => void)[] = [];
  /** Sessions at the edge waiting for it to move. */
  private readonly atEdge = new Set<() => void>();
  /** The capture moved the edge since the last read began. */
  private poked = false;
  /** Ends the pause between two reads early (set while pausing). */
  private wake: (() => void) | undefined;
  constructor(
    private readonly pool: Pool,
    private readonly clock: LiveClock,
    private readonly onError: (err: unknown) => void = () => undefined,
    /** Each database read of the tail (one or two per interval, whatever the sessions), and its rows. */
    private readonly onRead: (read: 'edge' | 'late', rows: number) => void = () => undefined,
  ) {
    this.marks = new SequenceMarks(pool);
  }

  /** Rows before this replay time are not held. */
  get start(): Micros {
    return this.startUs;
  }

  /** Replay time up to which every row visible at the last read is held. */
  get reached(): Micros {
    return this.reachedUs;
  }

  /** How many reads have brought rows (a session's cursor for late rows). */
  get arrival(): number {
    return this.arrivals;
  }

  /** A live session wants the tail: it starts reading (or keeps on) while someone does. */
  want(): void {
    this.wantedAt = Date.now();
    if (!this.running && !this.stopped) {
      this.running = this.loop().finally(() => (this.running = undefined));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /**
   * Resolves once a read moved `reached` on, or after `ms`: a session at the edge plays on as soon
   * as there is more, not on its next tick.
   */
  nextAdvance(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.atEdge.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.atEdge.add(done);
    });
  }

  /** Resolves after the next read that looked for late rows (a session leaving the tail waits for it). */
  nextLateCheck(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The changes in (fromUs, toUs] held for the filter, in replay order. */
  changes(fromUs: Micros, toUs: Micros, filter: EntityFilter): { changes: ChangeText[]; ids: string[] } {
    const changes: ChangeText[] = [];
    const ids: string[] = [];
    for (let i = this.firstAfter(fromUs); i < this.rows.length; i++) {
      const row = this.rows[i]!;
      if (row.tsUs > toUs) break;
      if (!filterMatches(filter, row.change.table, row.change.id, row.change.op)) continue;
      changes.push(row.change);
      ids.push(row.id);
    }
    return { changes, ids };
  }

  /**
   * What rows that arrived after `since` (an arrival count) at or before `positionUs` change for a
   * session at that position: an entity whose last row there (in replay order) is one of them goes
   * to that row's state. `sent` says which the session already has.
   */
  corrections(
    since: number,
    positionUs: Micros,
    filter: EntityFilter,
    sent: (id: string) => boolean,
  ): TailCorrections {
    const changes: ChangeText[] = [];
    const lookups: LateLookup[] = [];
    const settled = new Set<string>();
    const ts = positionUs / 1000;
    for (const row of this.old) {
      if (row.arrival <= since || row.tsUs > positionUs || sent(row.id)) continue;
      if (!filterMatches(filter, row.table, row.entity, row.op)) continue;
      lookups.push(row);
    }
    // Only the rows that arrived since are looked at, in replay order.
    const recent: TailRow[] = [];
    for (let i = this.arrived.length - 1; i >= 0 && this.arrived[i]!.arrival > since; i--)
      recent.push(this.arrived[i]!);
    recent.sort(replayOrder);
    for (const row of recent) {
      if (row.tsUs > positionUs || sent(row.id)) continue;
      const { table, id, op } = row.change;
      if (!filterMatches(filter, table, id, op)) continue;
      if (op === 't') {
        lookups.push({ id: row.id, table, entity: id, op, tsUs: row.tsUs });
        continue;
      }
      const key = entityKey(table, id);
      if (settled.has(key)) continue;
      settled.add(key);
      const last = this.lastAt(key, positionUs);
      // A later row of the entity that the session already has keeps its state as it is.
      if (last.arrival <= since && last !== row) continue;
      changes.push(
        last.change.op === 'd'
          ? { table, id, op: 'd', ts }
          : { table, id, op: 'u', ts, state: last.change.state ?? stateOf(null) },
      );
    }
    return { changes, lookups };
  }

  private lastAt(key: string, positionUs: Micros): TailRow {
    const rows = this.byEntity.get(key)!;
    let last = rows[0]!;
    for (const row of rows) if (row.tsUs <= positionUs && replayOrder(row, last) > 0) last = row;
    return last;
  }

  private async loop(): Promise<void> {
    const unsubscribe = this.clock.onStored(() => {
      this.poked = true;
      this.wake?.();
    });
    try {
      while (!this.stopped && Date.now() - this.wantedAt < IDLE_MS) {
        const started = Date.now();
        this.poked = false;
        const reached = this.reachedUs;
        try {
          await this.poll();
        } catch (err) {
          this.onError(err);
        }
        if (this.reachedUs > reached) for (const done of [...this.atEdge]) done();
        await this.pause(started);
      }
    } finally {
      unsubscribe();
      this.reset();
    }
  }

  /** Until the next interval, or from MIN_POLL_GAP_MS after `started` once the capture moved the edge. */
  private pause(started: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      let timer = setTimeout(done, Math.max(0, started + POLL_MS - Date.now()));
      const soon = () => {
        this.wake = undefined;
        clearTimeout(timer);
        timer = setTimeout(done, Math.max(0, started + MIN_POLL_GAP_MS - Date.now()));
      };
      if (this.poked) soon();
      else this.wake = soon;
    }).finally(() => (this.wake = undefined));
  }

  private async poll(): Promise<void> {
    if (this.marks.empty) {
      await this.marks.mark();
      this.seen.start(this.marks.floor());
      this.reachedUs = this.startUs = this.clock.edge();
      return;
    }
    const edge = this.clock.edge();
    const now = Date.now();
    if (now - this.lateCheckedAt >= LATE_CHECK_MS) {
      this.lateCheckedAt = now;
      const unseen = this.seen.unseen(this.marks.floor());
      await this.marks.mark();
      const { rows } = await this.pool.query<StoredRow>(LATE_SQL, [
        unseen.after,
        unseen.holes,
        this.reachedUs,
      ]);
      this.onRead('late', rows.length);
      this.arrive(
        rows.filter((r) => !this.seen.has(r.id)),
        true,
      );
      this.prune();
      for (const wake of this.waiting.splice(0)) wake();
    }
    if (edge > this.reachedUs) {
      const { rows } = await this.pool.query<StoredRow>(WINDOW_SQL, [this.reachedUs, edge]);
      this.onRead('edge', rows.length);
      // A full read may stop inside a group of rows at one time: keep to the groups it finished.
      let reached = edge;
      let kept = rows;
      if (rows.length === POLL_ROWS) {
        const lastTs = Number(rows.at(-1)!.ts_us);
        kept = rows.filter((r) => Number(r.ts_us) < lastTs);
        reached = lastTs - 1;
      }
      this.arrive(kept, false);
      this.reachedUs = Math.max(this.reachedUs, reached);
    }
  }

  /** Holds rows read now; late ones are placed in replay order among the rows held. */
  private arrive(rows: StoredRow[], late: boolean): void {
    if (rows.length === 0) return;
    this.arrivals += 1;
    const wall = Date.now();
    let unordered = false;
    for (const r of rows) {
      this.seen.add(r.id, wall);
      const tsUs = Number(r.ts_us);
      if (late && tsUs <= this.startUs) {
        this.old.push({
          id: r.id,
          table: r.table,
          entity: r.entity,
          op: r.op,
          tsUs,
          arrival: this.arrivals,
          wall,
        });
        continue;
      }
      const ts = tsUs / 1000;
      const change: ChangeText =
        r.op === 'd' || r.op === 't'
          ? { table: r.table, id: r.entity, op: r.op, ts }
          : { table: r.table, id: r.entity, op: r.op, ts, state: stateOf(r.after) };
      const row: TailRow = {
        id: r.id,
        tsUs,
        lsn: r.lsn,
        offset: r.kafka_offset,
        change,
        arrival: this.arrivals,
      };
      unordered ||= late;
      this.rows.push(row);
      this.arrived.push(row);
      const key = entityKey(r.table, r.entity);
      const held = this.byEntity.get(key);
      if (held) held.push(row);
      else this.byEntity.set(key, [row]);
    }
    if (unordered) this.rows.sort(replayOrder);
  }

  /** Index of the first row held after `fromUs`. */
  private firstAfter(fromUs: Micros): number {
    let [lo, hi] = [0, this.rows.length];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rows[mid]!.tsUs <= fromUs) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops rows more than KEEP_MS behind the edge, and ids and marks past the late window. */
  private prune(): void {
    const keepFrom = this.reachedUs - KEEP_MS * 1000;
    const cut = this.firstAfter(keepFrom);
    if (cut > 0) {
      for (const row of this.rows.slice(0, cut)) {
        const key = entityKey(row.change.table, row.change.id);
        const held = this.byEntity.get(key)!.filter((r) => r !== row);
        if (held.length > 0) this.byEntity.set(key, held);
        else this.byEntity.delete(key);
      }
      this.rows = this.rows.slice(cut);
      this.arrived = this.arrived.filter((row) => row.tsUs > keepFrom);
      this.startUs = Math.max(this.startUs, keepFrom);
    }
    const wall = Date.now();
    while (this.old.length > 0 && this.old[0]!.wall < wall - KEEP_MS) this.old.shift();
    this.marks.prune();
    this.seen.prune(this.marks.floor(), wall - 2 * LATE_WINDOW_MS);
  }

  private reset(): void {
    this.rows = [];
    this.arrived = [];
    this.byEntity.clear();
    this.seen.clear();
    this.marks.clear();
    this.old.length = 0;
    this.startUs = Infinity;
    this.reachedUs = -Infinity;
    for (const wake of this.waiting.splice(0)) wake();
  }
}
