import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import { jsonText, type JsonValue } from './json-text.js';
import { isCopyReady, type StoredChange, type WholeChange } from './change.js';

/** The digest of a row image, the same for equal rows whatever the order of their columns. */
export function rowDigest(row: { readonly [column: string]: JsonValue }): string {
  const sorted = Object.fromEntries(
    Object.keys(row)
      .sort()
      .map((k) => [k, row[k]!]),
  );
  return createHash('sha256').update(jsonText(sorted)).digest('base64url').slice(0, 27);
}

/** Whether the writer has the change's table and images (event-columns.ts copyReady). */
const whole = (c: StoredChange): c is WholeChange => !isCopyReady(c.event);

/** An entity id of a keyless row: its insert's coordinates, unique within the table. */
const ownId = (c: StoredChange) => `row:${c.offset}.${c.partition}`;

const STORED = `
select c.kafka_partition as partition, c.kafka_offset::text as offset
  from unnest($1::text[], $2::int[], $3::bigint[]) as k(topic, kafka_partition, kafka_offset)
  join msr.cdc_event c
    on c.kafka_topic = k.topic and c.kafka_partition = k.kafka_partition and c.kafka_offset = k.kafka_offset`;

const INSERT_ROWS = `
insert into msr.keyless_row (source, table_schema, table_name, entity_id, row_digest)
select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
on conflict do nothing`;

/**
 * Gives each change of a keyless table (ChangeEvent.keyless) the entity it applies to, inside the
 * write's transaction and in the batch's order, keeping msr.keyless_row (the live rows) in step:
 * an insert is a new entity; an update or delete takes a live row with the same before image (any
 * of identical ones: the replayed multiset is the same). A change whose coordinates are already
 * stored (a redelivery) changes nothing. Truncates empty the table's rows.
 */
export async function assignKeylessEntities(
  client: PoolClient,
  changes: readonly StoredChange[],
): Promise<StoredChange[]> {
  const keyless = changes.filter(whole).filter((c) => c.event.keyless);
  const truncates = changes.filter((c) => c.event.op === 't');
  if (keyless.length === 0 && truncates.length === 0) return [...changes];
  const { rows } = await client.query<{ partition: number; offset: string }>(STORED, [
    keyless.map((c) => c.topic),
    keyless.map((c) => c.partition),
    keyless.map((c) => c.offset),
  ]);
  const stored = new Set(rows.map((r) => `${r.offset}.${r.partition}`));
  const out: StoredChange[] = [];
  // New rows need no lookup: they are written together, before anything that looks rows up.
  let inserts: WholeChange[] = [];
  const writeInserts = async () => {
    if (inserts.length === 0) return;
    const e = inserts.map((c) => c.event);
    await client.query(INSERT_ROWS, [
      e.map((x) => x.source),
      e.map((x) => x.schema),
      e.map((x) => x.table),
      inserts.map(ownId),
      e.map((x) => x.keyless!.after),
    ]);
    inserts = [];
  };
  for (const change of changes) {
    if (!whole(change)) {
      out.push(change); // keyed: its entity is known
      continue;
    }
    const { event } = change;
    const fresh = event.keyless && !stored.has(`${change.offset}.${change.partition}`);
    if (fresh && (event.op === 'c' || event.op === 'r')) {
      inserts.push(change);
      out.push({ ...change, event: { ...event, entityId: ownId(change) } });
      continue;
    }
    if (fresh || event.op === 't') await writeInserts();
    if (event.op === 't') {
      await client.query(
        'delete from msr.keyless_row where source = $1 and table_schema = $2 and table_name = $3',
        [event.source, event.schema, event.table],
      );
    }
    if (!fresh) {
      out.push(event.keyless ? { ...change, event: { ...event, entityId: ownId(change) } } : change);
      continue;
    }
    out.push({ ...change, event: { ...event, entityId: await entityFor(client, change) } });
  }
  await writeInserts();
  return out;
}

async function entityFor(client: PoolClient, change: WholeChange): Promise<string> {
  const { event } = change;
  const table = [event.source, event.schema, event.table];
  const { before, after } = event.keyless!;
  let id: string | undefined;
  if (event.op === 'u' || event.op === 'd') {
    const { rows } = await client.query<{ entity_id: string }>(
      `select entity_id from msr.keyless_row
        where source = $1 and table_schema = $2 and table_name = $3 and row_digest = $4
        order by entity_id limit 1`,
      [...table, before],
    );
    id = rows[0]?.entity_id;
  }
  if (event.op === 'd') {
    if (id) {
      await client.query(
        'delete from msr.keyless_row where source = $1 and table_schema = $2 and table_name = $3 and entity_id = $4',
        [...table, id],
      );
    }
    // A delete of a row MSR never saw inserted removes nothing when replayed.
    return id ?? ownId(change);
  }
  if (id) {
    await client.query(
      `update msr.keyless_row set row_digest = $5
        where source = $1 and table_schema = $2 and table_name = $3 and entity_id = $4`,
      [...table, id, after],
    );
    return id;
  }
  id = ownId(change);
  await client.query(
    `insert into msr.keyless_row (source, table_schema, table_name, entity_id, row_digest)
     values ($1, $2, $3, $4, $5) on conflict do nothing`,
    [...table, id, after],
  );
  return id;
}
