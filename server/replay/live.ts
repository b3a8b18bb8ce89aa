import type { Pool } from 'pg';
import { stateOf, type ChangeText } from './outgoing.js';
import { sqlAt, type Micros } from './micros.js';
import type { EntityFilter } from './entity-filter.js';
import { LATE_WINDOW_MS, SequenceMarks } from './sequence-marks.js';
import { entityFilter, qualifiedTable, tableFilter } from '../db/sql-fragments.js';
import { entityKey } from '@msr/protocol/core';

/** A row found late, as the exact-state lookup needs it. */
export interface LateRow {
  event_id: string;
  table: string;
  id: string;
  op: ChangeText['op'];
}

/** `id` > `floor`, both the decimal text of non-negative bigints (no BigInt per row). */
function idAfter(id: string, floor: string): boolean {
  return id.length > floor.length || (id.length === floor.length && id > floor);
}

/**
 * Keeps a live session exact at the live edge. Rows are streamed by event time like any replay;
 * a row that becomes visible only after the session's position passed its time (a slow writer,
 * a transaction committing late) is found by id, and the entities it touches are re-sent with
 * their exact state at the position. Rows already sent are recognised by id, so nothing is sent
 * twice.
 */
export class LiveEdge {
  private readonly sent = new Map<string, number>();
  private readonly marks: SequenceMarks;

  constructor(
    private readonly pool: Pool,
    private readonly filter: EntityFilter,
    /** Each late-row query (for the metric). */
    private readonly onCheck: () => void = () => undefined,
  ) {
    this.marks = new SequenceMarks(pool);
  }

  /** Call at the start of an epoch: rows written from here on are checked. */
  async begin(): Promise<void> {
    this.sent.clear();
    this.marks.clear();
    await this.marks.mark();
  }

  /**
   * Notes rows as sent. Only rows after the oldest mark can ever be checked again (the floor never
   * goes below it), so older ones are not kept: a session catching up through history at full speed
   * would otherwise keep every id it read.
   */
  remember(ids: readonly string[]): void {
    const now = Date.now();
    const oldest = this.marks.oldest;
    for (const id of ids) if (oldest === undefined || idAfter(id, oldest)) this.sent.set(id, now);
  }

  /** Whether the row was sent in this epoch (and is recent enough to be checked). */
  hasSent(id: string): boolean {
    return this.sent.has(id);
  }

  /** Rows kept as sent (for metrics and tests: bounded by the rows written in the late window). */
  get remembered(): number {
    return this.sent.size;
  }

  /** Corrections for rows at or before `position` that arrived after it was streamed. */
  async corrections(position: Micros): Promise<ChangeText[]> {
    this.onCheck();
    if (this.marks.empty) await this.marks.mark();
    const floor = this.marks.floor();
    await this.marks.mark();
    const { rows } = await this.pool.query<LateRow>(
      `select e.id::text as event_id, ${qualifiedTable('e')} as "table", e.entity_id as id, e.op
         from msr.cdc_event e
        where e.id > $1::bigint
          and e.event_timestamp <= ${sqlAt('$2')}
          and ${tableFilter('$3', 'e')}
          and ${entityFilter('$4', 'e')}`,
      [floor, position, this.filter.tables ?? null, this.filter.entities ?? null],
    );
    const late = rows.filter((r) => !this.sent.has(r.event_id));
    this.prune();
    if (late.length === 0) return [];
    this.remember(late.map((r) => r.event_id));
    return this.exactStates(position, late);
  }

  /** The exact state at `position` of every entity (or truncated table) the late rows touch. */
  async exactStates(position: Micros, late: readonly LateRow[]): Promise<ChangeText[]> {
    const truncated = [...new Set(late.filter((r) => r.op === 't').map((r) => r.table))];
    const touched = late.filter((r) => r.op !== 't' && !truncated.includes(r.table));
    const tables = [...new Set([...truncated, ...touched.map((r) => r.table)])];
    const { rows } = await this.pool.query<{ table: string; id: string; state: string | null }>(
      `select ${qualifiedTable('s')} as "table", s.entity_id as id, (s.last_event).after::text as state
         from msr.entity_states_at(${sqlAt('$1')}, $2::text[]) s
        where ${qualifiedTable('s')} = any ($3::text[])
           or (${qualifiedTable('s')}, s.entity_id) in (select * from unnest($4::text[], $5::text[]))`,
      [position, tables, truncated, touched.map((r) => r.table), touched.map((r) => r.id)],
    );
    const ts = position / 1000;
    const changes: ChangeText[] = truncated.map((table) => ({ table, id: '', op: 't' as const, ts }));
    const present = new Set(rows.map((r) => entityKey(r.table, r.id)));
    for (const row of rows)
      changes.push({ table: row.table, id: row.id, op: 'u', ts, state: stateOf(row.state) });
    for (const row of touched) {
      if (!present.has(entityKey(row.table, row.id)))
        changes.push({ table: row.table, id: row.id, op: 'd', ts });
    }
    return changes;
  }

  private prune(): void {
    const cutoff = Date.now() - 2 * LATE_WINDOW_MS;
    this.marks.prune();
    for (const [id, at] of this.sent) if (at < cutoff) this.sent.delete(id);
  }
}
