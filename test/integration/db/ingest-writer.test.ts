import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent, StoredChange } from '../../../server/ingest/change.js';
import { storeBatch } from '../../../server/ingest/store.js';
import { writeBatch, writeChanges } from '../../../server/ingest/writer.js';
import { copyReady } from '../../../server/ingest/event-columns.js';
import { inTransaction } from '../../../server/db/transaction.js';
import { createLogger } from '../../../server/logger.js';
import { AggregateRefresh } from '../../../server/maintenance/aggregate-refresh.js';
import { Metrics } from '../../../server/metrics.js';
import { createTestDatabase, dialect, type TestDatabase } from '../../support/database.js';
import { hoursAgo, prepareStorageFor, sqlState } from '../../support/history.js';

// The ingest's batch write on whichever dialect this project runs (plain PostgreSQL or
// TimescaleDB): redelivery is a no-op, unreadable columns keep the previous value, and a record
// the database refuses goes to msr.ingest_error without holding back the others.

const T0 = hoursAgo(30);

function change(
  offset: number,
  entityId: string,
  after: object | null,
  extra: Partial<ChangeEvent> = {},
): StoredChange {
  const event: ChangeEvent = {
    eventTimeUs: BigInt(T0 + offset * 1000) * 1000n + 7n,
    source: 'w',
    schema: 'gis',
    table: 'note',
    entityId,
    op: after ? 'u' : 'd',
    before: null,
    after: after && JSON.stringify(after),
    unavailable: [],
    lsn: String(100 + offset),
    txId: '9',
    ...extra,
  };
  return {
    topic: 'w.gis.note',
    partition: 0,
    offset: String(offset),
    key: Buffer.from(entityId),
    value: Buffer.from('v'),
    event,
  };
}

describe('ingest batch writes', () => {
  let db: TestDatabase;
  const rows = async () =>
    (
      await db.pool.query(
        `select kafka_offset::int as offset, entity_id, op, after, (extract(epoch from event_timestamp) * 1000000)::bigint::text as us
           from msr.cdc_event where source = 'w' order by kafka_offset`,
      )
    ).rows;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, T0, T0 + 3_600_000);
  });
  afterAll(() => db?.drop());

  it('stores a batch once however often it is delivered, with microsecond event times', async () => {
    const batch = [
      change(0, '1', { id: 1, body: 'long text', n: 0 }, { op: 'c' }),
      change(1, '2', { id: 2, body: 'other', n: 0 }, { op: 'c' }),
    ];
    await storeBatch(db.pool, batch, []);
    await storeBatch(db.pool, batch, []);
    expect(await rows()).toEqual([
      {
        offset: 0,
        entity_id: '1',
        op: 'c',
        after: { id: 1, body: 'long text', n: 0 },
        us: `${BigInt(T0) * 1000n + 7n}`,
      },
      {
        offset: 1,
        entity_id: '2',
        op: 'c',
        after: { id: 2, body: 'other', n: 0 },
        us: `${BigInt(T0 + 1000) * 1000n + 7n}`,
      },
    ]);
  });

  it('fills columns Debezium could not read from the previous event, also within one batch', async () => {
    await storeBatch(
      db.pool,
      [
        change(2, '1', { id: 1, n: 1 }, { unavailable: ['body'] }),
        change(3, '1', { id: 1, n: 2 }, { unavailable: ['body', 'missing'] }),
      ],
      [],
    );
    const after = (await rows()).filter((r) => r.entity_id === '1').map((r) => r.after);
    expect(after).toEqual([
      { id: 1, body: 'long text', n: 0 },
      { id: 1, body: 'long text', n: 1 },
      { id: 1, body: 'long text', n: 2 },
    ]);
  });

  it('keeps every character of every column through COPY, stores only the new part of a partial redelivery, in batch order', async () => {
    const awkward = 'tab\there, new\nline, cr\r, back\\slash \\N, quote " and \u00e9\u{1F6B2}';
    // The Kafka decoder hands keyed changes on with their columns as COPY text (copyReady): the
    // last two are written from that text, the first two from their fields.
    const ready = (c: StoredChange): StoredChange => ({ ...c, event: copyReady(c.event as ChangeEvent) });
    const batch = [
      change(10, `id\t${awkward}`, { id: 10, body: awkward, path: 'C:\\x\\N' }, { op: 'c', source: 'w' }),
      change(
        11,
        '11',
        { id: 11, body: '\\.' },
        { op: 'c', before: JSON.stringify({ id: 11, body: awkward }) },
      ),
      ready(change(12, `ready\t${awkward}`, { id: 12, body: awkward, path: 'C:\\x\\N' }, { op: 'c' })),
      ready(
        change(
          13,
          '13',
          { id: 13, body: '\\.' },
          { op: 'c', before: JSON.stringify({ id: 13, body: awkward }) },
        ),
      ),
    ];
    expect(batch.slice(2).map((c) => 'copyColumns' in c.event)).toEqual([true, true]);
    await storeBatch(db.pool, batch.slice(0, 1), []);
    // Redelivered with a new record after it, then written twice in one transaction (as the
    // capture may): each stored once.
    await storeBatch(db.pool, batch, []);
    await inTransaction(db.pool, async (client) => {
      await writeChanges(client, batch);
      await writeChanges(client, [...batch].reverse());
    });
    const { rows: stored } = await db.pool.query(
      `select kafka_offset::int as offset, entity_id, after, before from msr.cdc_event
        where source = 'w' and kafka_offset >= 10 order by id`,
    );
    expect(stored).toEqual([
      {
        offset: 10,
        entity_id: `id\t${awkward}`,
        after: { id: 10, body: awkward, path: 'C:\\x\\N' },
        before: null,
      },
      { offset: 11, entity_id: '11', after: { id: 11, body: '\\.' }, before: { id: 11, body: awkward } },
      {
        offset: 12,
        entity_id: `ready\t${awkward}`,
        after: { id: 12, body: awkward, path: 'C:\\x\\N' },
        before: null,
      },
      { offset: 13, entity_id: '13', after: { id: 13, body: '\\.' }, before: { id: 13, body: awkward } },
    ]);
  });

  it('moves a record the database refuses to msr.ingest_error and stores the rest', async () => {
    const refused = change(5, '3', null, { op: 'c', after: '{"text": "a\\u0000b"}' });
    const result = await storeBatch(
      db.pool,
      [change(4, '2', { id: 2, n: 1 }), refused, change(6, '2', { id: 2, n: 2 })],
      [
        {
          topic: 'w.gis.note',
          partition: 0,
          offset: '7',
          key: null,
          value: Buffer.from([0xff, 0x00]),
          reason: 'NOT_JSON',
          detail: 'x',
        },
      ],
    );
    expect(result.failures.map((f) => [f.offset, f.reason])).toEqual([
      ['7', 'NOT_JSON'],
      ['5', 'REJECTED_BY_DATABASE'],
    ]);
    expect((await rows()).map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 6, 10, 11, 12, 13]);
    const { rows: errors } = await db.pool.query(
      `select kafka_offset::int as offset, reason, record_value from msr.ingest_error order by kafka_offset`,
    );
    expect(errors.map((e) => [e.offset, e.reason])).toEqual([
      [5, 'REJECTED_BY_DATABASE'],
      [7, 'NOT_JSON'],
    ]);
    expect(errors[1].record_value).toEqual(Buffer.from([0xff, 0x00]));
  });

  // A new batch is appended with one COPY straight into cdc_event (writer.ts); these pin what that
  // path must keep from the ON CONFLICT one.
  it('stores a batch whose first change is new but a later one stored (another writer) once, with its refusals', async () => {
    const other = change(21, '21', { id: 21, by: 'other writer' }, { op: 'c' });
    await storeBatch(db.pool, [other], []);
    const failure = {
      topic: 'w.gis.note',
      partition: 0,
      offset: '23',
      key: null,
      value: Buffer.from('not json'),
      reason: 'NOT_JSON' as const,
      detail: 'x',
    };
    const batch = [
      change(20, '20', { id: 20 }, { op: 'c' }),
      change(21, '21', { id: 21, by: 'this writer' }, { op: 'c' }),
      change(22, '22', { id: 22 }, { op: 'c' }),
    ];
    // writeBatch itself, not storeBatch, which would also get there by writing one change at a time.
    await writeBatch(db.pool, batch, [failure]);
    const stored = (await rows()).filter((r) => r.offset >= 20 && r.offset < 30);
    // Offset 21 keeps the row stored first: a redelivery never rewrites one.
    expect(stored.map((r) => [r.offset, r.after])).toEqual([
      [20, { id: 20 }],
      [21, { id: 21, by: 'other writer' }],
      [22, { id: 22 }],
    ]);
    const { rows: errors } = await db.pool.query(
      `select count(*)::int as n from msr.ingest_error where kafka_offset = 23`,
    );
    expect(errors[0].n).toBe(1);
  });

  it('keeps exact microseconds before 1970, past 2^53 µs and after year 9999', async () => {
    // Fixed instants far from any clock, on the default partition.
    const before1970 = -1_500n; // calendar-free: 1.5 ms before the epoch
    const year10000 = 253_402_300_800_000_001n; // beyond what toISOString writes as YYYY
    const past2pow53 = 9_007_199_254_740_993n; // a double holds no odd integer this large
    const at = (offset: number, us: bigint) =>
      change(offset, String(offset), { id: offset }, { op: 'c', eventTimeUs: us });
    await storeBatch(db.pool, [at(30, before1970)], []);
    // Not appendable (a year past 9999), so both go through the stage's INSERT.
    await storeBatch(db.pool, [at(31, year10000), at(32, past2pow53)], []);
    // Alone, the same time is appended: COPY with its text.
    await storeBatch(db.pool, [at(33, past2pow53)], []);
    await storeBatch(
      db.pool,
      [at(30, before1970), at(31, year10000), at(32, past2pow53), at(33, past2pow53)],
      [],
    );
    const stored = (await rows()).filter((r) => r.offset >= 30 && r.offset < 40);
    expect(stored.map((r) => [r.offset, r.us])).toEqual([
      [30, before1970.toString()],
      [31, year10000.toString()],
      [32, past2pow53.toString()],
      [33, past2pow53.toString()],
    ]);
  });

  it('keeps keyframes exact when an appended batch lands in buckets the aggregate holds already', async () => {
    const late = (offset: number, ms: number, n: number): StoredChange =>
      change(offset, 'late', { id: 'late', n }, { op: n === 0 ? 'c' : 'u', eventTimeUs: BigInt(ms) * 1000n });
    const t = hoursAgo(26);
    await storeBatch(db.pool, [late(40, t - 40 * 60_000, 0)], []);
    await new AggregateRefresh(db.pool, dialect, createLogger('silent'), new Metrics(), 60_000).run();
    const key = 'w|gis|note|late';
    expect((await sqlState(db.pool, t)).get(key)).toEqual({ id: 'late', n: 0 });
    // Later than the materialized row, earlier than t, stored after the refresh: the aggregate's
    // buckets there are stale, and the keyframe at t must see it.
    await storeBatch(db.pool, [late(41, t - 20 * 60_000, 1)], []);
    expect((await sqlState(db.pool, t)).get(key)).toEqual({ id: 'late', n: 1 });
  });
});
