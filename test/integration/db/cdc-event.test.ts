import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, dialect, type TestDatabase } from '../../support/database.js';

// What writers outside the server rely on: the column contract, redelivery as a no-op, and rows
// of any time accepted.

describe('msr.cdc_event', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  const count = async (where = 'true') =>
    (await db.pool.query<{ n: number }>(`select count(*)::int as n from msr.cdc_event where ${where}`))
      .rows[0]!.n;

  it('has the columns external tools read and write', async () => {
    const { rows } = await db.pool.query<{ column_name: string; data_type: string; is_nullable: string }>(
      `select column_name, data_type, is_nullable from information_schema.columns
        where table_schema = 'msr' and table_name = 'cdc_event' order by ordinal_position`,
    );
    const columns = Object.fromEntries(rows.map((r) => [r.column_name, `${r.data_type} ${r.is_nullable}`]));
    expect(columns).toMatchObject({
      event_timestamp: 'timestamp with time zone NO',
      source: 'text NO',
      table_schema: 'text NO',
      table_name: 'text NO',
      entity_id: 'text NO',
      op: 'character NO',
      before: 'jsonb YES',
      after: 'jsonb YES',
      lsn: 'bigint YES',
      tx_id: 'bigint YES',
      kafka_topic: 'text YES',
      kafka_partition: 'integer YES',
      kafka_offset: 'bigint YES',
      ingested_at: 'timestamp with time zone NO',
    });
  });

  it('ignores a re-inserted Kafka topic/partition/offset, with or without ON CONFLICT', async () => {
    const insert = `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after,
                      kafka_topic, kafka_partition, kafka_offset)
                    values (now() - interval '1 hour', 'gis', 'gis', 'bookmark', '1', 'c', '{"a":1}', 'gis.gis.bookmark', 0, 41)`;
    await db.pool.query(insert);
    await db.pool.query(insert);
    await db.pool.query(`${insert} on conflict do nothing`);
    // A JDBC sink writing the same record again, even with an ingest time of its own.
    await db.pool.query(insert.replace('\'{"a":1}\'', `'{"a":2}'`));
    expect(await count(`kafka_topic = 'gis.gis.bookmark'`)).toBe(1);
    const { rows } = await db.pool.query(
      `select after from msr.cdc_event where kafka_topic = 'gis.gis.bookmark'`,
    );
    expect(rows[0].after).toEqual({ a: 1 });
    // Another offset is a new event.
    await db.pool.query(insert.replace(', 41)', ', 42)'));
    expect(await count(`kafka_topic = 'gis.gis.bookmark'`)).toBe(2);
  });

  it('rejects an unknown op with the named check constraint', async () => {
    await expect(
      db.pool.query(
        `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op)
         values (now(), 's', 'x', 'y', '1', 'x')`,
      ),
    ).rejects.toThrow(/cdc_event_op_check/);
  });

  it('accepts rows of any time in the playback window and beyond it', async () => {
    const before = await count();
    for (const offset of ['6 days 23 hours', '3 days', '1 minute', '-2 days', '400 days']) {
      await db.pool.query(
        `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
         values (now() - interval '${offset}', 'ops', 'public', 'note', $1, 'c', '{}')`,
        [offset],
      );
    }
    expect(await count()).toBe(before + 5);
  });

  it.runIf(dialect === 'postgres')(
    'moves rows out of the default partition when their day gets one (plain PostgreSQL: TimescaleDB makes chunks itself)',
    async () => {
      await db.pool.query(
        `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op)
       values ('2025-03-04 10:00:00+00', 'ops', 'public', 'note', 'old', 'c')`, // calendar-free: older than any window on purpose
      );
      const inDefault = async () =>
        (await db.pool.query(`select count(*)::int as n from msr.cdc_event_default where entity_id = 'old'`))
          .rows[0].n;
      expect(await inDefault()).toBe(1);
      const made = await db.pool.query(`select msr.prepare_storage('2025-03-04', '2025-03-04') as n`); // calendar-free: the same old day
      expect(made.rows[0].n).toBe(1);
      expect(await inDefault()).toBe(0);
      const moved = await db.pool.query(`select count(*)::int as n from msr.cdc_event_p20250304`);
      expect(moved.rows[0].n).toBe(1);
      expect(await count(`entity_id = 'old'`)).toBe(1);
    },
  );

  it.runIf(dialect === 'timescaledb')(
    'is a hypertable with entity_last_states as a continuous aggregate (TimescaleDB only)',
    async () => {
      const ht = await db.pool.query(
        `select hypertable_schema, hypertable_name from timescaledb_information.hypertables where hypertable_schema = 'msr'`,
      );
      expect(ht.rows).toContainEqual({ hypertable_schema: 'msr', hypertable_name: 'cdc_event' });
      const cagg = await db.pool.query(
        `select view_schema, view_name, materialized_only from timescaledb_information.continuous_aggregates`,
      );
      expect(cagg.rows).toEqual([
        { view_schema: 'msr', view_name: 'entity_last_states', materialized_only: true },
      ]);
      const jobs = await db.pool.query(
        `select proc_name from timescaledb_information.jobs where hypertable_schema = 'msr' and hypertable_name = 'entity_last_states'`,
      );
      expect(jobs.rows.map((r) => r.proc_name)).toEqual(['policy_refresh_continuous_aggregate']);
    },
  );
});
