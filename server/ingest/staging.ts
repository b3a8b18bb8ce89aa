import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyLine } from './copy-text.js';
import type { StoredChange } from './change.js';

// A batch reaches cdc_event in two steps: COPY into a temporary table of this connection (no WAL,
// no index, rows streamed as text), then one INSERT ... SELECT that keeps ON CONFLICT on the
// coordinates, so a redelivered batch still stores nothing twice. COPY straight into cdc_event
// would have no ON CONFLICT, and its redelivery guard is a per-row trigger, which also stops
// COPY from inserting rows in bulk. This INSERT says ON CONFLICT: the trigger stands aside
// (msr.writer), and client_min_messages keeps "already exists, skipping" off the wire.
const PREPARE = `
set local msr.writer = 'ingest';
set local client_min_messages = warning;
create temp table if not exists msr_incoming_change (
  ord int not null,
  us bigint not null,
  source text not null,
  table_schema text not null,
  table_name text not null,
  entity_id text not null,
  op char(1) not null,
  before jsonb,
  after jsonb,
  lsn bigint,
  tx_id bigint,
  kafka_topic text not null,
  kafka_partition int not null,
  kafka_offset bigint not null
) on commit delete rows`;

const COPY = `copy pg_temp.msr_incoming_change
  (ord, us, source, table_schema, table_name, entity_id, op, before, after, lsn, tx_id, kafka_topic,
   kafka_partition, kafka_offset) from stdin`;

// The DELETE empties the stage even when one transaction writes several batches (the capture).
// ORDER BY ord: ids are given in the batch's order, the tie-break of replay order.
const MOVE = `
with incoming as (delete from pg_temp.msr_incoming_change returning *)
insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, before, after,
                           lsn, tx_id, kafka_topic, kafka_partition, kafka_offset)
select timestamptz 'epoch' + us * interval '1 microsecond', source, table_schema, table_name, entity_id, op,
       before, after, lsn, tx_id, kafka_topic, kafka_partition, kafka_offset
  from incoming
 order by ord
on conflict (kafka_topic, kafka_partition, kafka_offset, event_timestamp) do nothing`;

/** Inserts changes into msr.cdc_event inside the caller's transaction; a stored one is skipped. */
export async function insertChanges(client: PoolClient, changes: readonly StoredChange[]): Promise<void> {
  await client.query(PREPARE);
  await pipeline(Readable.from(copyText(changes)), client.query(copyFrom(COPY)));
  await client.query(MOVE);
}

function* copyText(changes: readonly StoredChange[]): Generator<string> {
  // Lines are joined into chunks of about 64 KiB: one write per line costs more than the COPY.
  let chunk = '';
  for (let i = 0; i < changes.length; i++) {
    const { event: e, topic, partition, offset } = changes[i]!;
    chunk += copyLine([
      i,
      e.eventTimeUs,
      e.source,
      e.schema,
      e.table,
      e.entityId,
      e.op,
      e.before,
      e.after,
      e.lsn,
      e.txId,
      topic,
      partition,
      offset,
    ]);
    if (chunk.length >= 65_536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}
