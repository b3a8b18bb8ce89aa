import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import { DEMO_SQL_DIR } from '../assets.js';
import { AdvisoryLock } from '../db/locks.js';
import { inTransaction } from '../db/transaction.js';

const sqlFile = (name: string) => readFileSync(new URL(name, DEMO_SQL_DIR), 'utf8');
const FUNCTIONS_SQL = sqlFile('./demo_functions.sql');
const VEHICLE_EVENTS_SQL = sqlFile('./vehicle_events.sql');
const INCIDENT_EVENTS_SQL = sqlFile('./incident_events.sql');
const SOURCE_TABLES_SQL = sqlFile('./source_tables.sql');
const EVENT_COLUMNS = 'event_timestamp, source, table_schema, table_name, entity_id, op, before, after';

/** The live demo's source tables, captured like a source database's (source 'demo'). */
export const DEMO_SOURCE_TABLES = ['city.vehicle', 'city.incident'] as const;

const HISTORY_MS = 24 * 3_600_000;
const EPOCH_KEY = 'DEMO_EPOCH';

export interface SeedResult {
  readonly events: number;
  readonly ms: number;
  readonly epoch: Date;
}

/** The size of the demo city: how many vehicles, and how often each reports. */
export interface CityModel {
  readonly vehicles: number;
  readonly minPeriodS: number;
  readonly periodSpreadS: number;
}

/** 2,000 vehicles reporting every 40 to 130 s: about 2.3 million events a day. */
export const DEMO_CITY: CityModel = { vehicles: 2000, minPeriodS: 40, periodSpreadS: 91 };

export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** Installs (or updates) the demo models the seed and the live generator share, and the source tables. */
export async function installDemo(pool: Pool): Promise<void> {
  await pool.query(FUNCTIONS_SQL);
  await pool.query(SOURCE_TABLES_SQL);
}

/** The demo epoch, or null when this database was not seeded by the demo. */
export async function demoEpoch(pool: Pool): Promise<Date | null> {
  const { rows } = await pool.query<{ value: string }>(`select value from msr.configuration where key = $1`, [
    EPOCH_KEY,
  ]);
  return rows[0] ? new Date(rows[0].value) : null;
}

/**
 * On an empty cdc_event, writes `hours` of demo city history ending at `now`, set-based, split
 * into one shard per core (each its own transaction) because INSERT ... SELECT runs on one core.
 * Returns null when the table already holds events.
 */
export async function seedDemoHistory(
  pool: Pool,
  log: Logger,
  options: { now?: Date; historyMs?: number | undefined; city?: CityModel } = {},
): Promise<SeedResult | null> {
  const now = options.now ?? new Date();
  const guard = await pool.connect();
  try {
    await guard.query('select pg_advisory_lock($1)', [AdvisoryLock.DEMO_SEED]);
    try {
      const existing = await guard.query(`select 1 from msr.cdc_event limit 1`);
      if (existing.rowCount) return null;
      const started = Date.now();
      const epoch = new Date(now.getTime() - (options.historyMs ?? HISTORY_MS));
      const from = new Date(epoch.getTime() - 1);
      const shardCount = Math.max(1, Math.min(availableParallelism(), pool.options.max - 1));
      const counts =
        shardCount === 1
          ? [
              await inTransaction(guard, (c) =>
                appendDemoEvents(c, from, now, epoch, undefined, options.city),
              ),
            ]
          : await Promise.all(
              Array.from({ length: shardCount }, async (_, index) => {
                const client = await pool.connect();
                try {
                  return await inTransaction(client, (c) =>
                    appendDemoEvents(c, from, now, epoch, { index, count: shardCount }, options.city),
                  );
                } finally {
                  client.release();
                }
              }),
            );
      await guard.query(`insert into msr.configuration (key, value, description) values ($1, $2, $3)`, [
        EPOCH_KEY,
        epoch.toISOString(),
        'Start of the demo history (report 0 of every demo vehicle).',
      ]);
      // Fresh statistics, or the planner takes the new millions of rows for an empty table and
      // sorts whole ranges where an index scan would stop after a window's LIMIT.
      await guard.query('analyze msr.cdc_event');
      const events = counts.reduce((a, b) => a + b, 0);
      const ms = Date.now() - started;
      log.info(
        { events, ms, shards: shardCount, eventsPerSecond: Math.round((events / ms) * 1000) },
        'demo history seeded',
      );
      return { events, ms, epoch };
    } finally {
      await guard.query('select pg_advisory_unlock($1)', [AdvisoryLock.DEMO_SEED]);
    }
  } finally {
    guard.release();
  }
}

/** Inserts the demo events whose time falls in (from, to]; incidents go with shard 0. */
export async function appendDemoEvents(
  db: PoolClient,
  from: Date,
  to: Date,
  epoch: Date,
  shard: Shard = { index: 0, count: 1 },
  city: CityModel = DEMO_CITY,
): Promise<number> {
  return demoEvents(
    db,
    (select) => `insert into msr.cdc_event (${EVENT_COLUMNS}) ${select}`,
    from,
    to,
    epoch,
    shard,
    city,
  );
}

/**
 * Applies the demo events whose time falls in (from, to] to the source tables (the latest per
 * entity), for the built-in capture to stream: what the live demo does when it can.
 */
export async function applyDemoEvents(db: PoolClient, from: Date, to: Date, epoch: Date): Promise<number> {
  const apply = (select: string, table: DemoTable) => `
    with due as (${select}),
    latest as (select distinct on (entity_id) * from due order by entity_id, event_timestamp desc),
    gone as (
      delete from ${table} t using latest l where l.op = 'd' and t.id::text = l.entity_id returning 1),
    kept as (
      insert into ${table} select (jsonb_populate_record(null::${table}, l.after)).* from latest l where l.op <> 'd'
      on conflict (id) do update set ${UPSERT[table]}
      returning 1)
    select 1 from gone union all select 1 from kept`;
  return demoEvents(db, apply, from, to, epoch);
}

type DemoTable = (typeof DEMO_SOURCE_TABLES)[number];

const UPSERT: Record<DemoTable, string> = {
  'city.vehicle':
    '(callsign, kind, status, lat, lon, speed_kmh, updated_at) = (excluded.callsign, excluded.kind, ' +
    'excluded.status, excluded.lat, excluded.lon, excluded.speed_kmh, excluded.updated_at)',
  'city.incident':
    '(category, priority, status, lat, lon, units_assigned, opened_at) = (excluded.category, excluded.priority, ' +
    'excluded.status, excluded.lat, excluded.lon, excluded.units_assigned, excluded.opened_at)',
};

/**
 * Fills empty source tables with the demo state at `at` (the end of the seeded history), so the
 * captured stream goes on from where the seed stopped. Returns the rows written.
 */
export async function fillDemoSource(pool: Pool, at: Date): Promise<number> {
  let rows = 0;
  for (const table of DEMO_SOURCE_TABLES) {
    const { rowCount } = await pool.query(
      `insert into ${table}
       select (jsonb_populate_record(null::${table}, (s.last_event).after)).*
         from msr.entity_states_at($1, array['${table}']) s
        where s.source = 'demo' and not exists (select 1 from ${table})`,
      [at],
    );
    rows += rowCount ?? 0;
  }
  return rows;
}

const eventParams = (from: Date, to: Date, epoch: Date) => [
  from.toISOString(),
  to.toISOString(),
  epoch.toISOString(),
];

const vehicleParams = (
  from: Date,
  to: Date,
  epoch: Date,
  shard: Shard = { index: 0, count: 1 },
  city = DEMO_CITY,
) => [
  ...eventParams(from, to, epoch),
  shard.index,
  shard.count,
  city.vehicles,
  city.minPeriodS,
  city.periodSpreadS,
];

async function demoEvents(
  db: PoolClient,
  wrap: (select: string, table: DemoTable) => string,
  from: Date,
  to: Date,
  epoch: Date,
  shard: Shard = { index: 0, count: 1 },
  city: CityModel = DEMO_CITY,
): Promise<number> {
  const vehicles = await db.query(
    wrap(VEHICLE_EVENTS_SQL, 'city.vehicle'),
    vehicleParams(from, to, epoch, shard, city),
  );
  const incidents =
    shard.index === 0
      ? await db.query(wrap(INCIDENT_EVENTS_SQL, 'city.incident'), eventParams(from, to, epoch))
      : { rowCount: 0 };
  return (vehicles.rowCount ?? 0) + (incidents.rowCount ?? 0);
}
