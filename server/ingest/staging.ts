import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyField } from './copy-text.js';
import type { StoredChange } from './change.js';
import { EVENT_COLUMNS, eventColumnsText } from './event-columns.js';
import { timestampAtMicros } from '../db/sql-fragments.js';

// Two ways into cdc_event, both in the caller's transaction and both keeping the batch's order in
// the ids (the tie-break of replay order):
// - appendChanges: one COPY straight into cdc_event, for changes none of which is stored yet (the
//   usual case). A stored one makes it fail with a unique violation on the Kafka coordinates.
// - insertChanges: COPY into a temporary table of this connection (no WAL, no index), then one
//   INSERT ... SELECT that keeps ON CONFLICT on the coordinates, so a redelivered batch stores
//   nothing twice. It costs PostgreSQL about a quarter more per row (npm run bench:ingest).
// Neither runs the per-row redelivery trigger, meant for writers that cannot say ON CONFLICT: the
// unique index or ON CONFLICT does its job (msr.writer), and client_min_messages keeps "already
// exists, skipping" off the wire.
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
  (ord, us, ${EVENT_COLUMNS}, kafka_topic, kafka_partition, kafka_offset) from stdin`;

// The DELETE empties the stage even when one transaction writes several batches (the capture).
// ORDER BY ord: ids are given in the batch's order, the tie-break of replay order.
const MOVE = `
with incoming as (delete from pg_temp.msr_incoming_change returning *)
insert into msr.cdc_event (event_timestamp, ${EVENT_COLUMNS}, kafka_topic, kafka_partition, kafka_offset)
select ${timestampAtMicros('us')}, ${EVENT_COLUMNS}, kafka_topic, kafka_partition, kafka_offset
  from incoming
 order by ord
on conflict (kafka_topic, kafka_partition, kafka_offset, event_timestamp) do nothing`;

const APPEND = `copy msr.cdc_event
  (event_timestamp, ${EVENT_COLUMNS}, kafka_topic, kafka_partition, kafka_offset) from stdin`;

const STORED = `
select exists (
  select 1 from msr.cdc_event
   where kafka_topic = $1 and kafka_partition = $2 and kafka_offset = $3 and event_timestamp = $4::timestamptz
) as stored`;

/** What both ways write after the time, in the order of their COPY column lists, with the end of line. */
const columnsLine = ({ event, topic, partition, offset }: StoredChange): string =>
  `${eventColumnsText(event)}\t${copyField(topic)}\t${partition}\t${offset}\n`;

/** Inserts changes into msr.cdc_event inside the caller's transaction; a stored one is skipped. */
export async function insertChanges(client: PoolClient, changes: readonly StoredChange[]): Promise<void> {
  await client.query(PREPARE);
  // Numbers first: nothing in them to escape.
  const line = (change: StoredChange, i: number) =>
    `${i}\t${change.event.eventTimeUs}\t${columnsLine(change)}`;
  await pipeline(Readable.from(copyText(changes, line)), client.query(copyFrom(COPY)));
  await client.query(MOVE);
}

/**
 * Appends changes to msr.cdc_event inside the caller's transaction with one COPY; throws a unique
 * violation (23505, and the transaction is then aborted) if one of them is stored already.
 */
export async function appendChanges(client: PoolClient, changes: readonly StoredChange[]): Promise<void> {
  await client.query(`set local msr.writer = 'ingest'`);
  const line = (change: StoredChange) => `${timestampText(change.event.eventTimeUs)}\t${columnsLine(change)}`;
  await pipeline(Readable.from(copyText(changes, line)), client.query(copyFrom(APPEND)));
}

/** Whether this change's coordinates are stored already: one probe of the unique index. */
export async function isStored(client: PoolClient, change: StoredChange): Promise<boolean> {
  const { topic, partition, offset, event } = change;
  const { rows } = await client.query<{ stored: boolean }>(STORED, [
    topic,
    partition,
    offset,
    timestampText(event.eventTimeUs),
  ]);
  return rows[0]!.stored;
}

// Years 1 to 9999: what toISOString writes as YYYY-MM-DD, which PostgreSQL reads back.
const FIRST_US = -62_135_596_800_000_000n;
const LAST_US = 253_402_300_799_999_999n;

/**
 * Whether appendChanges can take these changes: their times are ones it writes as text. Any
 * other time goes through insertChanges, where PostgreSQL refuses it as data, one record alone.
 */
export function appendable(changes: readonly StoredChange[]): boolean {
  return changes.every(({ event }) => event.eventTimeUs >= FIRST_US && event.eventTimeUs <= LAST_US);
}

// The rows of a batch mostly share their second: its text is made once (timestampText).
let lastSecond = Number.NaN;
let lastSecondText = '';

/** A timestamptz literal of microseconds since the epoch, in UTC (years 1 to 9999). */
export function timestampText(us: bigint): string {
  const n = Number(us);
  if (n >= 0 && Number.isSafeInteger(n)) {
    // 1970 to 2255: exact in a double, no BigInt arithmetic.
    const second = Math.floor(n / 1_000_000);
    if (second !== lastSecond) {
      lastSecond = second;
      lastSecondText = new Date(second * 1000).toISOString().slice(0, 19); // YYYY-MM-DDTHH:MM:SS
    }
    return `${lastSecondText}.${String(n - second * 1_000_000).padStart(6, '0')}Z`;
  }
  const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n); // floor, also before 1970
  const iso = new Date(Number(ms)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}${String(us - ms * 1000n).padStart(3, '0')}Z`;
}

function* copyText(
  changes: readonly StoredChange[],
  line: (change: StoredChange, i: number) => string,
): Generator<string> {
  // Lines are joined into chunks of about 64 KiB: one write per line costs more than the COPY.
  let chunk = '';
  for (let i = 0; i < changes.length; i++) {
    chunk += line(changes[i]!, i);
    if (chunk.length >= 65_536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}
