// Event table benchmark: what each index of msr.cdc_event, its redelivery trigger and (plain
// PostgreSQL) its jsonb documents cost the ingest's writes and what they buy its reads, on both
// dialects in one run. Each variant takes one of them away (or changes it) on the migrated table;
// the same decoded Debezium rows are then written by the ingest's own writer (new batches: one
// COPY into cdc_event) in batches of 1,000, and the reads the indexes exist for are timed: the
// state at T, a replay window read, the live edge's read by id, an entity's last event before a
// time, a redelivered batch (COPY into the stage, INSERT ... ON CONFLICT). Variants alternate
// with the table as shipped, so ratios come from neighbouring runs.
// Usage: npm run bench:event-table [-- <rows>]   (writes load/results/event-table.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import type { Pool } from 'pg';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { decodeRecord } from '../server/ingest/debezium.js';
import type { WholeChange } from '../server/ingest/change.js';
import { writeBatch } from '../server/ingest/writer.js';
import { createLogger } from '../server/logger.js';
import { startBenchDatabase } from './bench-database.js';
import { debeziumRecords } from './debezium-records.js';
import { percentile } from './percentile.js';

const ROWS = Number(process.argv[2] ?? 100_000);
const ENTITIES = 2_000;
const BATCH = 1_000;
const READS = 7;
const RESULTS = new URL('./results/', import.meta.url);
const log = createLogger('warn');

interface Variant {
  readonly name: string;
  /** SQL that changes the table as shipped; `restore` puts it back. */
  readonly change?: string;
  readonly restore?: string;
}

interface Measure {
  readonly variant: string;
  readonly rowsPerSecond: number;
  readonly stateAtMs: number;
  readonly windowReadMs: number;
  readonly liveReadMs: number;
  readonly entityReadMs: number;
  readonly redeliveryMs: number;
}

async function definitions(pool: Pool): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ name: string; def: string }>(
    `select indexname as name, indexdef as def from pg_indexes where schemaname = 'msr' and tablename = 'cdc_event'
     union all
     select tgname, pg_get_triggerdef(oid) from pg_trigger where tgrelid = 'msr.cdc_event'::regclass and tgname = 'cdc_event_skip_redelivered'`,
  );
  // pg_indexes shows a partitioned table's index as ON ONLY the parent, which would make it on
  // none of the partitions: made again, it must be made on all of them.
  return new Map(rows.map((r) => [r.name, r.def.replace(' ON ONLY ', ' ON ')]));
}

const NARROW_ENTITY_INDEX =
  'drop index msr.cdc_event_entity_time; create index cdc_event_entity_time on msr.cdc_event (entity_id, event_timestamp desc)';

function variants(dialect: Dialect, defs: Map<string, string>): Variant[] {
  const out: Variant[] = [{ name: 'as shipped' }];
  const shippedEntityIndex = `drop index msr.cdc_event_entity_time; ${defs.get('cdc_event_entity_time')}`;
  for (const [name, def] of defs) {
    if (name === 'cdc_event_kafka_coordinates') continue; // the idempotency itself: not optional
    const drop =
      name === 'cdc_event_skip_redelivered'
        ? `drop trigger ${name} on msr.cdc_event`
        : `drop index msr.${name}`;
    out.push({ name: `without ${name}`, change: drop, restore: def });
  }
  if (defs.has('cdc_event_entity_time')) {
    // The widest index (four text columns and the time) serves one question: an entity's events
    // before a time. Led by the entity id alone it is narrower; the rest is checked on the row.
    out.push({
      name: 'cdc_event_entity_time on (entity_id, event_timestamp desc)',
      change: NARROW_ENTITY_INDEX,
      restore: shippedEntityIndex,
    });
  }
  // The documents themselves: jsonb is parsed and rebuilt on every insert and turned back into
  // text on every read, where json is checked and kept as its text. On TimescaleDB the continuous
  // aggregate over cdc_event forbids changing a column's type, so this is plain PostgreSQL only.
  if (dialect === 'postgres') {
    const documents = (type: string) =>
      `alter table msr.cdc_event alter column before type ${type} using before::${type}, alter column after type ${type} using after::${type}`;
    out.push({ name: 'before and after as json', change: documents('json'), restore: documents('jsonb') });
    if (defs.has('cdc_event_entity_time')) {
      out.push({
        name: 'before and after as json, and cdc_event_entity_time on (entity_id, event_timestamp desc)',
        change: `${documents('json')}; ${NARROW_ENTITY_INDEX}`,
        restore: `${documents('jsonb')}; ${shippedEntityIndex}`,
      });
    }
  }
  if (defs.has('cdc_event_id')) {
    out.push({
      name: 'cdc_event_id as BRIN (16 pages a range)',
      change: `drop index msr.cdc_event_id; create index cdc_event_id on msr.cdc_event using brin (id) with (pages_per_range = 16)`,
      restore: `drop index msr.cdc_event_id; ${defs.get('cdc_event_id')!}`,
    });
  }
  return out;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < READS; i++) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  return Math.round(percentile(times, 50) * 10) / 10;
}

async function measure(pool: Pool, variant: Variant, changes: readonly WholeChange[]): Promise<Measure> {
  await pool.query('truncate msr.cdc_event');
  if (variant.change) await pool.query(variant.change);
  try {
    const started = performance.now();
    for (let i = 0; i < changes.length; i += BATCH) await writeBatch(pool, changes.slice(i, i + BATCH), []);
    const writeMs = performance.now() - started;
    await pool.query('analyze msr.cdc_event');
    const { rows } = await pool.query<{ mid: Date; top: string }>(
      `select min(event_timestamp) + (max(event_timestamp) - min(event_timestamp)) / 2 as mid, max(id)::text as top
         from msr.cdc_event`,
    );
    const { mid, top } = rows[0]!;
    return {
      variant: variant.name,
      rowsPerSecond: Math.round(changes.length / (writeMs / 1000)),
      stateAtMs: await timed(() => pool.query('select count(*) from msr.entity_states_at($1)', [mid])),
      windowReadMs: await timed(() =>
        pool.query(
          `select id from msr.cdc_event where event_timestamp >= $1
            order by event_timestamp, coalesce(lsn, -1), coalesce(kafka_offset, -1), id limit 2000`,
          [mid],
        ),
      ),
      liveReadMs: await timed(() =>
        pool.query('select count(*) from msr.cdc_event where id > $1::bigint - 500', [top]),
      ),
      // An entity's last event before a time, as the writer's fill of unreadable columns, keyless
      // rows and an entity's history ask it.
      entityReadMs: await timed(() =>
        pool.query(
          `select after from msr.cdc_event
            where source = $1 and table_schema = $2 and table_name = $3 and entity_id = $4 and event_timestamp < $5
            order by event_timestamp desc limit 1`,
          [
            changes[0]!.event.source,
            changes[0]!.event.schema,
            changes[0]!.event.table,
            changes[0]!.event.entityId,
            mid,
          ],
        ),
      ),
      redeliveryMs: await timed(() => writeBatch(pool, changes.slice(0, BATCH), [])),
    };
  } finally {
    if (variant.restore) await pool.query(variant.restore);
  }
}

/** Partitions or chunks of cdc_event without every index of the table: a variant left them so. */
async function childrenMissingIndexes(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ child: string }>(
    `select h.inhrelid::regclass::text as child
       from pg_inherits h
       left join pg_index i on i.indrelid = h.inhrelid
      where h.inhparent = 'msr.cdc_event'::regclass
      group by h.inhrelid
     having count(i.indexrelid) < (select count(*) from pg_indexes where schemaname = 'msr' and tablename = 'cdc_event')`,
  );
  return rows.map((r) => r.child);
}

async function runDialect(dialect: Dialect, changes: readonly WholeChange[]): Promise<Measure[]> {
  const dir = await mkdtemp(path.join(tmpdir(), `msr-event-table-${dialect}-`));
  const database = await startBenchDatabase(dialect, dir);
  const pool = createPool(database.url, 2, log);
  try {
    await migrate(pool, log);
    const all = variants(dialect, await definitions(pool));
    const results: Measure[] = [];
    // Two rounds, each variant next to a run of the table as shipped.
    for (let round = 0; round < 2; round++) {
      for (const variant of all.slice(1)) {
        for (const v of [all[0]!, variant]) {
          const m = await measure(pool, v, changes);
          const missing = await childrenMissingIndexes(pool);
          if (missing.length > 0) throw new Error(`after ${v.name}, ${missing.join(', ')} lack indexes`);
          results.push(m);
          process.stdout.write(`${dialect} ${JSON.stringify(m)}\n`);
        }
      }
    }
    return results;
  } finally {
    await pool.end();
    await database.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Per variant: its median figures, and its write rate against the shipped runs beside it. */
function summarize(results: readonly Measure[]) {
  const names = [...new Set(results.map((r) => r.variant))];
  return names.map((name) => {
    const runs = results.filter((r) => r.variant === name);
    const ratios = results.flatMap((r, i) =>
      r.variant === name && i > 0 && name !== 'as shipped'
        ? [r.rowsPerSecond / results[i - 1]!.rowsPerSecond]
        : [],
    );
    const med = (pick: (m: Measure) => number) => percentile(runs.map(pick), 50);
    return {
      variant: name,
      rowsPerSecond: med((m) => m.rowsPerSecond),
      writeVsShipped: ratios.length ? Math.round(percentile(ratios, 50) * 100) / 100 : 1,
      stateAtMs: med((m) => m.stateAtMs),
      windowReadMs: med((m) => m.windowReadMs),
      liveReadMs: med((m) => m.liveReadMs),
      entityReadMs: med((m) => m.entityReadMs),
      redeliveryMs: med((m) => m.redeliveryMs),
    };
  });
}

async function main() {
  const changes: WholeChange[] = debeziumRecords(ROWS, ENTITIES).map((r, i) => {
    const decoded = decodeRecord({
      topic: 'bench.city.vehicle',
      key: Buffer.from(r.key),
      value: Buffer.from(r.value),
    });
    if (decoded.kind !== 'change') throw new Error('the benchmark records are change events');
    return {
      topic: 'bench.city.vehicle',
      partition: 0,
      offset: String(i),
      key: null,
      value: null,
      event: decoded.event,
    };
  });
  const summary: Record<string, ReturnType<typeof summarize>> = {};
  for (const dialect of ['postgres', 'timescaledb'] as const)
    summary[dialect] = summarize(await runDialect(dialect, changes));
  const result = {
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; embedded PostgreSQL 15 and TimescaleDB 2.22.1 on PostgreSQL 15`,
    rows: ROWS,
    batch: BATCH,
    summary,
  };
  const md = [
    '# msr.cdc_event: what each index costs and buys',
    '',
    `Machine: ${result.machine}. ${ROWS} decoded Debezium updates of ${ENTITIES} vehicles written by the ingest's writer in batches of ${BATCH}; reads p50 of ${READS}.`,
    '',
    ...Object.entries(summary).flatMap(([dialect, rows]) => [
      `## ${dialect}`,
      '',
      '| variant | write rows/s | vs as shipped | state at T | window read (2,000) | live read by id | last event of an entity | redelivered batch |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.variant} | ${r.rowsPerSecond} | ${r.writeVsShipped}x | ${r.stateAtMs} ms | ${r.windowReadMs} ms | ${r.liveReadMs} ms | ${r.entityReadMs} ms | ${r.redeliveryMs} ms |`,
      ),
      '',
    ]),
  ].join('\n');
  await mkdir(RESULTS, { recursive: true });
  await writeFile(new URL('event-table.json', RESULTS), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(new URL('event-table.md', RESULTS), md);
  process.stdout.write(`${md}\n`);
}

await main();
