import type { Pool, PoolClient } from 'pg';
import { inTransaction } from '../db/transaction.js';
import type { FailedRecord, StoredChange } from './change.js';
import { assignKeylessEntities } from './keyless.js';
import { timestampAtMicros } from '../db/sql-fragments.js';
import { appendable, appendChanges, insertChanges, isStored } from './staging.js';

// Columns Debezium could not read take their value from the entity's previous event (in replay
// order), so an unchanged TOAST value never overwrites what is known. Idempotent: a stored row
// already has those columns and its own values win.
const FILL_UNAVAILABLE = `
with target as (
  select event_timestamp, source, table_schema, table_name, entity_id, lsn, kafka_offset, id
    from msr.cdc_event
   where kafka_topic = $1 and kafka_partition = $2 and kafka_offset = $3
     and event_timestamp = ${timestampAtMicros('$4::bigint')}
),
prior as (
  select p.after
    from target t
    cross join lateral (
      select p.after from msr.cdc_event p
       where p.source = t.source and p.table_schema = t.table_schema and p.table_name = t.table_name
         and p.entity_id = t.entity_id
         and (p.event_timestamp, coalesce(p.lsn, -1), coalesce(p.kafka_offset, -1), p.id)
           < (t.event_timestamp, coalesce(t.lsn, -1), coalesce(t.kafka_offset, -1), t.id)
       order by p.event_timestamp desc, coalesce(p.lsn, -1) desc, coalesce(p.kafka_offset, -1) desc, p.id desc
       limit 1
    ) p
)
update msr.cdc_event e
   set after = coalesce(
         (select jsonb_object_agg(k, prior.after -> k) from prior, unnest($5::text[]) k where prior.after ? k),
         '{}'::jsonb) || e.after
  from target t
 where e.id = t.id and e.event_timestamp = t.event_timestamp`;

const INSERT_FAILURES = `
insert into msr.ingest_error (kafka_topic, kafka_partition, kafka_offset, record_key, record_value, reason, detail)
select * from unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::text[])
on conflict on constraint ingest_error_kafka_coordinates do nothing`;

const UNIQUE_VIOLATION = '23505';

/**
 * Stores one Kafka batch in one transaction: every change (a redelivered record is a no-op) and
 * every undecodable record. Either all of it is committed or none, so the caller may commit the
 * Kafka offsets exactly when this resolves.
 *
 * A batch is appended with COPY unless its first change is stored already: a redelivery starts
 * where the last committed offset (or confirmed LSN) left off, so it is caught by that one probe.
 * A stored change further in (another writer of the same records at the same time) aborts the
 * append, and the batch is written again skipping what is stored.
 */
export async function writeBatch(
  pool: Pool,
  changes: readonly StoredChange[],
  failures: readonly FailedRecord[],
): Promise<void> {
  try {
    await writeInTransaction(pool, changes, failures, 'append');
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    await writeInTransaction(pool, changes, failures, 'skip stored');
  }
}

async function writeInTransaction(
  pool: Pool,
  changes: readonly StoredChange[],
  failures: readonly FailedRecord[],
  how: 'append' | 'skip stored',
): Promise<void> {
  await inTransaction(pool, async (client) => {
    await writeChanges(client, changes, how);
    if (failures.length > 0) {
      await client.query(INSERT_FAILURES, [
        failures.map((f) => f.topic),
        failures.map((f) => f.partition),
        failures.map((f) => f.offset),
        failures.map((f) => f.key),
        failures.map((f) => f.value),
        failures.map((f) => f.reason),
        failures.map((f) => f.detail),
      ]);
    }
  });
}

/**
 * Inserts changes inside the caller's transaction (a redelivered one is a no-op), then fills the
 * columns their source could not read from each entity's previous event. With 'append', unless
 * the first change is stored, they are appended, and a stored one is a unique violation (23505)
 * that aborts the transaction.
 */
export async function writeChanges(
  client: PoolClient,
  changes: readonly StoredChange[],
  how: 'append' | 'skip stored' = 'skip stored',
): Promise<void> {
  if (changes.length === 0) return;
  changes = await assignKeylessEntities(client, changes);
  if (how === 'append' && appendable(changes) && !(await isStored(client, changes[0]!))) {
    await appendChanges(client, changes);
  } else {
    await insertChanges(client, changes);
  }
  for (const c of changes) {
    if (c.event.unavailable.length === 0) continue;
    await client.query(FILL_UNAVAILABLE, [
      c.topic,
      c.partition,
      c.offset,
      c.event.eventTimeUs.toString(),
      c.event.unavailable,
    ]);
  }
}
