import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialect, type TestDatabase } from '../../support/database.js';
import {
  hoursAgo,
  prepareStorageFor,
  generateHistory,
  insertHistory,
  referenceState,
  sqlState,
  type HistoryEvent,
} from '../../support/history.js';
import { REFRESH_AGGREGATE } from '../../../server/db/sql-fragments.js';

// msr.entity_states_at(t) against an independent fold of the raw events, on whichever dialect
// this project runs: before the aggregate is materialized, after, and after late rows land in
// buckets that were already materialized.

const HOUR = 3_600_000;

describe('state at T (entity_states_at)', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);
  const span = 5 * HOUR;
  const probes = [0, 0.1, 0.25, 0.33, 0.5, 0.61, 0.75, 0.9, 1].map((f) => Math.round(start + f * span));

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, start, start + span);
    events = generateHistory(42, start, span, 2500);
    await insertHistory(db.pool, events);
  });
  afterAll(() => db?.drop());

  const refresh = (until: number | null) =>
    db.pool.query(`call msr.refresh_entity_states($1::timestamptz)`, [
      until === null ? null : new Date(until),
    ]);

  // Each materialized row knows its entity's next materialized bucket for the keyframe lookup
  // (plain PostgreSQL: in entity_last_states itself; TimescaleDB: in entity_state_links, a copy of
  // the continuous aggregate). After MSR's refresh it must equal the entity's actual next bucket,
  // and on TimescaleDB the copy must hold exactly the aggregate's rows.
  const expectLinked = async () => {
    const linked = dialect === 'postgres' ? 'msr.entity_last_states' : 'msr.entity_state_links';
    const { rows } = await db.pool.query(
      `select count(*)::int as rows,
              count(*) filter (where l.entity is null or a.entity is null)::int as unmatched,
              count(*) filter (where l.next_bucket is distinct from a.following)::int as broken,
              count(*) filter (where l.state is distinct from a.state)::int as changed
         from (select bucket, (source, table_schema, table_name, entity_id)::text as entity, last_event::text as state,
                      lead(bucket) over (partition by source, table_schema, table_name, entity_id
                                         order by bucket) as following
                 from msr.entity_last_states) a
         full join (select bucket, (source, table_schema, table_name, entity_id)::text as entity,
                           last_event::text as state, next_bucket
                      from ${linked}) l using (bucket, entity)`,
    );
    expect(rows[0].rows).toBeGreaterThan(0);
    expect(rows[0]).toEqual({ rows: rows[0].rows, unmatched: 0, broken: 0, changed: 0 });
  };

  // A late change to a vehicle the aggregate already holds.
  const vehicleUpdate = (ts: number, entityId: string, after: Record<string, unknown>): HistoryEvent => ({
    ts,
    source: 'test',
    schema: 'city',
    table: 'vehicle',
    entityId,
    op: 'u',
    after,
    lsn: 1,
    offset: null,
  });

  const expectSame = async (label: string) => {
    for (const t of probes) {
      const expected = referenceState(events, t);
      const actual = await sqlState(db.pool, t);
      expect(actual, `${label} at ${new Date(t).toISOString()}`).toEqual(expected);
    }
  };

  it('the history exercises ties, deletes, re-creates and truncates', () => {
    const ops = new Set(events.map((e) => e.op));
    expect([...ops].sort()).toEqual(['c', 'd', 'r', 't', 'u']);
    const tied = events.filter((e, i) => i > 0 && e.ts === events[i - 1]!.ts);
    expect(tied.length).toBeGreaterThan(100);
  });

  it('matches the raw fold before the aggregate is materialized', async () => {
    const { rows } = await db.pool.query(`select count(*)::int as n from msr.entity_last_states`);
    expect(rows[0].n).toBe(0);
    // Nothing is materialized: keyframes read only raw events (on TimescaleDB an empty aggregate's
    // watermark is PostgreSQL's lowest timestamp, and the instant before it does not exist).
    const watermark = await db.pool.query<{ w: string }>('select msr.entity_states_watermark()::text as w');
    expect(watermark.rows[0]!.w).toBe('-infinity');
    await expectSame('unmaterialized');
  });

  it('matches after refresh_continuous_aggregate in two steps, reading the aggregate', async () => {
    await refresh(start + 2.5 * HOUR);
    await expectLinked();
    await refresh(null);
    const { rows } = await db.pool.query(
      `select count(*)::int as n, min(bucket) as lo from msr.entity_last_states`,
    );
    expect(rows[0].n).toBeGreaterThan(100);
    // Every bucket holding an event is materialized: the watermark is past the last one.
    const wm = await db.pool.query(`select msr.entity_states_watermark() as w`);
    const lastEvent = Math.max(...events.map((e) => e.ts));
    expect(new Date(wm.rows[0].w).getTime()).toBeGreaterThan(lastEvent);
    await expectSame('materialized');
    await expectLinked();
  });

  it('stays exact when late rows land in materialized buckets', async () => {
    const late = generateHistory(7, start + HOUR, HOUR, 200).map((e) => ({
      ...e,
      entityId: e.entityId && `late-${e.entityId}`,
    }));
    // The late rows also update entities the aggregate already holds.
    late.push(vehicleUpdate(start + 2 * HOUR, '7', { late: true }));
    await insertHistory(db.pool, late);
    events = [...events, ...late];
    await expectSame('late rows, not refreshed');
    await db.pool.query(REFRESH_AGGREGATE);
    await expectSame('late rows, refreshed');
    await expectLinked();
  });

  it('stays exact when a refresh after late rows stops short of the materialized end', async () => {
    const late = generateHistory(11, start + 1.5 * HOUR, HOUR / 2, 100).map((e) => ({
      ...e,
      entityId: e.entityId && `late2-${e.entityId}`,
    }));
    late.push(vehicleUpdate(start + 1.6 * HOUR, '8', { late: 2 }));
    await insertHistory(db.pool, late);
    events = [...events, ...late];
    await refresh(start + 3 * HOUR);
    await expectSame('late rows, refreshed up to 3 h');
    await expectLinked();
    await refresh(null);
    await expectSame('late rows, refreshed to the end');
    await expectLinked();
  });

  it.runIf(dialect === 'postgres')(
    'stays exact when rows commit while a refresh runs (plain PostgreSQL: its own refresh bookkeeping)',
    async () => {
      // The aggregate as if last refreshed at +4 h (a fresh database has it at -infinity).
      const mid = new Date(start + 4 * HOUR);
      await db.pool.query(`delete from msr.entity_last_states where bucket >= $1`, [mid]);
      await db.pool.query(
        `update msr.entity_last_states_progress set materialized_until = $1, invalidated_from = null`,
        [mid],
      );
      const writer = new pg.Client({ connectionString: db.url });
      await writer.connect();
      try {
        // A write in flight past the materialized end, which the refresh is about to materialize...
        await writer.query('begin');
        await writer.query(
          `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after, lsn)
         values ($1, 'test', 'city', 'vehicle', '9', 'u', '{"racing": true}', 1)`,
          [new Date(start + 4.2 * HOUR)],
        );
        let refreshed = false;
        const refreshing = refresh(null).then(() => (refreshed = true));
        await new Promise((r) => setTimeout(r, 300));
        // ...holds the refresh until it commits, so the refresh sees its rows.
        expect(refreshed).toBe(false);
        await writer.query('commit');
        await refreshing;
      } finally {
        await writer.end();
      }
      events = [
        ...events,
        {
          ts: start + 4.2 * HOUR,
          source: 'test',
          schema: 'city',
          table: 'vehicle',
          entityId: '9',
          op: 'u',
          after: { racing: true },
          lsn: 1,
          offset: null,
          id: Number.MAX_SAFE_INTEGER,
        },
      ];
      await expectSame('a write committed during a refresh');
      await expectLinked();
    },
  );

  it('filters by schema.table', async () => {
    const t = probes[5]!;
    const expected = new Map(
      [...referenceState(events, t)].filter(([k]) => k.startsWith('test|city|incident|')),
    );
    expect(expected.size).toBeGreaterThan(0);
    expect(await sqlState(db.pool, t, ['city.incident'])).toEqual(expected);
  });

  it.runIf(dialect === 'timescaledb')(
    "stays exact when TimescaleDB's own refresh rewrites linked buckets, and its relinking job relinks them (TimescaleDB only: the links are its)",
    async () => {
      await db.pool.query(REFRESH_AGGREGATE);
      const watermark = async () =>
        (await db.pool.query<{ w: Date }>('select msr.entity_states_watermark() as w')).rows[0]!.w.getTime();
      const linkedEnd = await watermark();
      const late = generateHistory(13, start + 0.5 * HOUR, HOUR, 150).map((e) => ({
        ...e,
        entityId: e.entityId && `late3-${e.entityId}`,
      }));
      late.push(vehicleUpdate(start + 0.7 * HOUR, '5', { late: 3 }));
      await insertHistory(db.pool, late);
      events = [...events, ...late];
      // The job that relinks after TimescaleDB's policy runs only when this test says, below.
      const { rows: jobs } = await db.pool.query<{ id: number }>(
        `select job_id as id from timescaledb_information.jobs where proc_name = 'link_entity_states_job'`,
      );
      expect(jobs).toHaveLength(1);
      await db.pool.query('select alter_job($1, scheduled => false)', [jobs[0]!.id]);
      // An operator's (or the policy's) refresh: the aggregate is rewritten, its links are not.
      await db.pool.query(`call refresh_continuous_aggregate('msr.entity_last_states', null, null)`);
      const { rows } = await db.pool.query<{ stale_from: Date }>(
        'select stale_from from msr.entity_state_links_progress',
      );
      const bucket = 15 * 60_000;
      const earliestLate = Math.min(...late.map((e) => e.ts));
      expect(rows[0]!.stale_from.getTime()).toBe(Math.floor(earliestLate / bucket) * bucket);
      // Keyframes trust the links only below the rewritten span, and read raw events past it.
      expect(await watermark()).toBe(rows[0]!.stale_from.getTime());
      await expectSame('rewritten by TimescaleDB, not relinked');
      // The job that relinks after TimescaleDB's policy, run now.
      await db.pool.query('call run_job($1)', [jobs[0]!.id]);
      expect(await watermark()).toBeGreaterThanOrEqual(linkedEnd);
      await expectLinked();
      await expectSame('relinked');
    },
  );
});
