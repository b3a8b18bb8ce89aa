// Keyframe benchmark on both dialects in one run: for a city (default the large one, 10,000
// vehicles, about 2 million events a day; `demo`: the demo city) or a wide table (`wide`: 200,000
// pgbench-like accounts, a snapshot and 100,000 updates over the day), seeded into a fresh plain
// PostgreSQL 15 and a fresh TimescaleDB 2.22.1 server: the state at T (msr.entity_states_at) at 30
// times of the day, 30 seeks of one session (first keyframe part, complete keyframe; msr.v1.json
// and msr.v2.json taking turns), GET /api/v1/state, the raw limit: a pg-cursor read of the same
// final rows from a plain table, and (cities only) 500 sessions opened at different times of the day
// with the CPU the database, the server and the clients spent on them.
// Each dialect's figures are taken the same way, so the TimescaleDB / PostgreSQL ratios compare
// like with like. The full picture (baselines, sessions matrix, backup) is `npm run bench`.
// Usage: npm run bench:keyframes [-- demo | wide]   (writes load/results/keyframes[-wide].{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import type { Pool } from 'pg';
import Cursor from 'pg-cursor';
import { ClientProcess } from './client-process.js';
import type { SeekTimes } from './session-clients.js';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { DEMO_CITY, installDemo, seedDemoHistory, type CityModel } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import { startBenchDatabase } from './bench-database.js';
import { startMsr } from '../scripts/services/msr.js';
import { percentile } from './percentile.js';
import { processCpuMs } from './cpu-usage.js';
import { REFRESH_AGGREGATE } from '../server/db/sql-fragments.js';

const RESULTS = new URL('./results/', import.meta.url);
const LARGE: CityModel = { vehicles: 10_000, minPeriodS: 300, periodSpreadS: 261 };
const city = process.argv.includes('demo') ? DEMO_CITY : LARGE;
const wide = process.argv.includes('wide');
const WIDE_ENTITIES = 200_000;
const SEEKS = wide ? 10 : 30;
const OPENS = 500;
const TOGETHER = 50;
const SAME_T_ROUNDS = 3;
const log = createLogger('warn');

interface Figures {
  dialect: Dialect;
  events: number;
  entities: number;
  stateAtT: { p50Ms: number; p95Ms: number };
  /** Seeks speaking msr.v1.json, and the same seeks (taking turns) speaking msr.v2.json. */
  seek: { firstByteP50Ms: number; completeP50Ms: number; completeP95Ms: number };
  seekV2: { firstByteP50Ms: number; completeP50Ms: number; completeP95Ms: number };
  stateHttp: { p50Ms: number; p95Ms: number };
  rawCursor: { p50Ms: number };
  /** OPENS sessions opened at different times of the day, in waves of 25 (not for the wide set). */
  opens?: { sessions: number; seconds: number; secondsV2: number; cpuV2: OpensCpu };
  /**
   * Database CPU time of one session opening at a time T, and of TOGETHER sessions opening at
   * once at another T (cities only), ms, in each of SAME_T_ROUNDS.
   */
  sameT?: { oneMs: number[]; togetherMs: number[] };
}

/** CPU seconds the opens took, by process: the database's backends, the server, the clients. */
interface OpensCpu {
  readonly database: number;
  readonly server: number;
  readonly clients: number;
}

const OPENS_CPU_LABELS: Record<keyof OpensCpu, string> = {
  database: "the database's backends",
  server: 'the server',
  clients: "the clients' process (with its start)",
};

/** 200,000 accounts as a Debezium snapshot at the start of the day, then 100,000 updates over it. */
async function seedWide(pool: Pool, epoch: number): Promise<number> {
  const day = new Date(epoch).toISOString().slice(0, 10);
  await pool.query(`select msr.prepare_storage($1::date - 1, $1::date + 2)`, [day]);
  const row = (balance: string) =>
    `jsonb_build_object('aid', a, 'bid', 1 + a / 100000, 'abalance', ${balance}, 'filler', repeat(' ', 84))`;
  await pool.query(
    `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after, lsn,
                                kafka_topic, kafka_partition, kafka_offset)
     select to_timestamp($1 / 1000.0) + a * interval '1 microsecond', 'bench', 'public', 'pgbench_accounts',
            a::text, 'r', ${row('0')}, a, 'bench.public.pgbench_accounts', 0, a
       from generate_series(1, $2::int) a`,
    [epoch, WIDE_ENTITIES],
  );
  await pool.query(
    `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, before, after,
                                lsn, kafka_topic, kafka_partition, kafka_offset)
     select to_timestamp($1 / 1000.0) + interval '1 second' + u * (interval '86000 seconds' / $3::int),
            'bench', 'public', 'pgbench_accounts', a::text, 'u', ${row('0')}, ${row('u % 5000 - 2500')},
            $2::int + u, 'bench.public.pgbench_accounts', 0, $2::int + u
       from generate_series(1, $3::int) u, lateral (select 1 + (u * 7919) % $2::int as a) pick`,
    [epoch, WIDE_ENTITIES, WIDE_ENTITIES / 2],
  );
  return WIDE_ENTITIES + WIDE_ENTITIES / 2;
}

/**
 * The CPU time (ms) the database's backends spend while `work` runs, from /proc: those there at
 * the start from what they had then, those that connected meanwhile from nothing.
 */
async function databaseCpuMs(pool: Pool, work: () => Promise<void>): Promise<number> {
  const backends = async () =>
    (
      await pool.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      )
    ).rows.map((r) => r.pid);
  const before = new Map<number, number>();
  for (const pid of await backends()) before.set(pid, (await processCpuMs(pid)) ?? 0);
  await work();
  let spent = 0;
  for (const pid of new Set([...before.keys(), ...(await backends())])) {
    spent += ((await processCpuMs(pid)) ?? before.get(pid) ?? 0) - (before.get(pid) ?? 0);
  }
  return spent;
}

/** The raw limit: a pg-cursor read, in keyframe-sized chunks, of a plain table holding the keyframe's rows. */
async function rawCursorRead(pool: Pool, t: number): Promise<number> {
  await pool.query('drop table if exists bench_final');
  await pool.query(
    `create table bench_final as
       select table_schema || '.' || table_name as "table", entity_id as id, (last_event).after as state
         from msr.entity_states_at(to_timestamp($1 / 1000.0))`,
    [t],
  );
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const client = await pool.connect();
    const started = performance.now();
    const cursor = client.query(new Cursor('select "table", id, state::text as state from bench_final'));
    while ((await cursor.read(1000)).length > 0);
    times.push(performance.now() - started);
    await cursor.close();
    client.release();
  }
  await pool.query('drop table bench_final');
  return percentile(times, 50);
}

async function measure(dialect: Dialect): Promise<Figures> {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-keyframes-'));
  const database = await startBenchDatabase(dialect, dir);
  const pool = createPool(database.url, 4, log);
  try {
    await migrate(pool, log);
    let earliest: number;
    let events: number;
    if (wide) {
      earliest = Date.now() - 24 * 3_600_000;
      events = await seedWide(pool, earliest);
    } else {
      await installDemo(pool);
      const seed = (await seedDemoHistory(pool, log, { city }))!;
      earliest = seed.epoch.getTime();
      events = seed.events;
    }
    await pool.query(REFRESH_AGGREGATE);
    await pool.query('analyze');
    const latest = earliest + 24 * 3_600_000;
    const times = Array.from(
      { length: SEEKS },
      (_, i) => earliest + (((i * 7919) % 1000) / 1000) * (latest - earliest),
    );
    // At the latest time, when every entity exists.
    const raw = await rawCursorRead(pool, latest);

    const state: number[] = [];
    let entities = 0;
    for (const t of times) {
      const started = performance.now();
      const { rows } = await pool.query<{ n: number }>(
        'select count(*)::int as n from msr.entity_states_at(to_timestamp($1 / 1000.0))',
        [t],
      );
      state.push(performance.now() - started);
      entities = Math.max(entities, rows[0]!.n);
    }

    const app = await startMsr(
      database.url,
      { AGGREGATE_REFRESH_SECONDS: '0', MAX_ACTIVE_SESSIONS: String(OPENS + 10) },
      { log },
    );
    let opens: Figures['opens'];
    let sameT: Figures['sameT'];
    let seeks: SeekTimes | undefined;
    let seeksV2: SeekTimes | undefined;
    const stateHttp: number[] = [];
    try {
      // The client in a process of its own, as in npm run bench: its parsing of the parts does not
      // take the server's event loop.
      const single = await ClientProcess.start({
        url: `ws://127.0.0.1:${app.port}/v1/replay`,
        mode: 'seek-max',
        count: 1,
        earliest,
        latest,
        seekTimes: times.map((t) => Math.round(t)),
        maxSpeedSeconds: 0,
        compareSubprotocol: 'msr.v2.json',
      });
      ({ seeks, seeksCompared: seeksV2 } = await single.finish());
      for (const t of times) {
        const started = performance.now();
        const response = await fetch(`http://127.0.0.1:${app.port}/api/v1/state?t=${Math.round(t)}`);
        await response.arrayBuffer();
        stateHttp.push(performance.now() - started);
      }
      if (!wide) {
        // v2 first: the v1 run after it finds the database's pages the warmer.
        const seconds: Record<string, number> = {};
        const cpu: Record<string, OpensCpu> = {};
        for (const subprotocol of ['msr.v2.json', 'msr.v1.json']) {
          // Where the machine's time goes: all three share its cores, so their sum bounds the wall.
          const server = process.cpuUsage();
          let many: ClientProcess | undefined;
          const database = await databaseCpuMs(pool, async () => {
            many = await ClientProcess.start({
              url: `ws://127.0.0.1:${app.port}/v1/replay`,
              mode: 'play',
              count: OPENS,
              earliest,
              latest,
              subprotocol,
            });
          });
          const used = process.cpuUsage(server);
          const clients = (await processCpuMs(many!.pid!)) ?? 0;
          const s = (ms: number) => Math.round(ms / 100) / 10;
          cpu[subprotocol] = {
            database: s(database),
            server: s((used.user + used.system) / 1000),
            clients: s(clients),
          };
          seconds[subprotocol] = s(many!.ready.openMs);
          await many!.finish();
        }
        opens = {
          sessions: OPENS,
          seconds: seconds['msr.v1.json']!,
          secondsV2: seconds['msr.v2.json']!,
          cpuV2: cpu['msr.v2.json']!,
        };
        // One session opening at T, then TOGETHER opening at once at another T, in rounds at
        // different times (the middle of a range cut shorter each time): keyframe reads asked for
        // while one is under way share it.
        sameT = { oneMs: [], togetherMs: [] };
        for (let round = 0; round < SAME_T_ROUNDS; round++) {
          for (const [count, into] of [
            [1, sameT.oneMs],
            [TOGETHER, sameT.togetherMs],
          ] as const) {
            const cut = (2 * round + (count === 1 ? 1 : 2)) * 3_600_000;
            let clients: ClientProcess | undefined;
            into.push(
              await databaseCpuMs(pool, async () => {
                clients = await ClientProcess.start({
                  url: `ws://127.0.0.1:${app.port}/v1/replay`,
                  mode: 'play',
                  count,
                  earliest,
                  latest: latest - cut,
                  startWithinMs: 0,
                  wave: count,
                  openOnly: true,
                });
              }),
            );
            // Closing the sessions is not part of opening them.
            await clients!.finish();
          }
        }
      }
    } finally {
      await app.stop();
    }
    const ms = (values: number[], p: number) => Math.round(percentile(values, p));
    const seekFigures = (s: SeekTimes) => ({
      firstByteP50Ms: ms(s.firstByte, 50),
      completeP50Ms: ms(s.complete, 50),
      completeP95Ms: ms(s.complete, 95),
    });
    return {
      dialect,
      events,
      entities,
      stateAtT: { p50Ms: ms(state, 50), p95Ms: ms(state, 95) },
      seek: seekFigures(seeks!),
      seekV2: seekFigures(seeksV2!),
      stateHttp: { p50Ms: ms(stateHttp, 50), p95Ms: ms(stateHttp, 95) },
      rawCursor: { p50Ms: Math.round(raw) },
      ...(opens ? { opens } : {}),
      ...(sameT ? { sameT } : {}),
    };
  } finally {
    await pool.end();
    await database.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const results: Figures[] = [];
for (const dialect of ['postgres', 'timescaledb'] as const) results.push(await measure(dialect));
const [pgFigures, ts] = results as [Figures, Figures];
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const median = (values: number[]) => percentile(values, 50);
const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const dataset = wide
  ? `${WIDE_ENTITIES} pgbench-like accounts, ${pgFigures.events} events in 24 h`
  : `${city.vehicles} vehicles, ${pgFigures.events} events in 24 h`;
const row = (figure: string, pick: (f: Figures) => number[]) => {
  const [a, b] = [pick(pgFigures), pick(ts)];
  const cells = (v: number[]) => `${v.join(' / ')} ms`;
  return `| ${figure} | ${cells(a)} | ${cells(b)} | ${a.map((v, i) => ratio(b[i]!, v)).join(' / ')} |`;
};
const md = [
  `# Keyframes on both dialects: ${dataset}`,
  '',
  `Machine: ${machine}. Plain PostgreSQL 15 (embedded) and TimescaleDB 2.22.1 on PostgreSQL 15, fresh each, same seed.`,
  '',
  '| figure | PostgreSQL | TimescaleDB | TimescaleDB / PostgreSQL |',
  '| --- | --- | --- | --- |',
  row(`state at T (SQL), p50 / p95 (${pgFigures.entities} entities)`, (f) => [
    f.stateAtT.p50Ms,
    f.stateAtT.p95Ms,
  ]),
  row('seek to first keyframe part, p50 (msr.v1.json)', (f) => [f.seek.firstByteP50Ms]),
  row('seek to complete keyframe, p50 / p95 (msr.v1.json)', (f) => [
    f.seek.completeP50Ms,
    f.seek.completeP95Ms,
  ]),
  row('seek to first keyframe part, p50 (msr.v2.json, same seeks taking turns)', (f) => [
    f.seekV2.firstByteP50Ms,
  ]),
  row('seek to complete keyframe, p50 / p95 (msr.v2.json)', (f) => [
    f.seekV2.completeP50Ms,
    f.seekV2.completeP95Ms,
  ]),
  row('GET /api/v1/state, whole body, p50 / p95', (f) => [f.stateHttp.p50Ms, f.stateHttp.p95Ms]),
  row('raw limit: pg-cursor read of the same final rows from a plain table, p50', (f) => [f.rawCursor.p50Ms]),
  ...(pgFigures.opens && ts.opens
    ? [
        `| ${OPENS} sessions opened at different times (waves of 25), whole (msr.v1.json) | ${pgFigures.opens.seconds} s | ` +
          `${ts.opens.seconds} s | ${ratio(ts.opens.seconds, pgFigures.opens.seconds)} |`,
        `| the same ${OPENS} opens speaking msr.v2.json (run first) | ${pgFigures.opens.secondsV2} s | ` +
          `${ts.opens.secondsV2} s | ${ratio(ts.opens.secondsV2, pgFigures.opens.secondsV2)} |`,
        ...(Object.keys(OPENS_CPU_LABELS) as (keyof OpensCpu)[]).map(
          (part) =>
            `| CPU of those v2 opens: ${OPENS_CPU_LABELS[part]} | ` +
            `${pgFigures.opens!.cpuV2[part]} s | ${ts.opens!.cpuV2[part]} s | ${ratio(ts.opens!.cpuV2[part], pgFigures.opens!.cpuV2[part])} |`,
        ),
      ]
    : []),
  ...(pgFigures.sameT && ts.sameT
    ? [
        row(`database CPU of one session opening at T, ${SAME_T_ROUNDS} rounds`, (f) => f.sameT!.oneMs),
        row(`database CPU of ${TOGETHER} sessions opening at once at one T`, (f) => f.sameT!.togetherMs),
      ]
    : []),
  '',
  ...(pgFigures.sameT && ts.sameT
    ? [
        `${TOGETHER} sessions opening at once at one T against one opening alone (database CPU, median of the rounds): ${results
          .map((f) => `${f.dialect} ${ratio(median(f.sameT!.togetherMs), median(f.sameT!.oneMs))}`)
          .join(', ')}.`,
        '',
      ]
    : []),
  `Complete keyframe against the raw read, msr.v1.json / msr.v2.json: ${results
    .map(
      (f) =>
        `${f.dialect} ${ratio(f.seek.completeP50Ms, f.rawCursor.p50Ms)} / ${ratio(f.seekV2.completeP50Ms, f.rawCursor.p50Ms)}`,
    )
    .join(', ')}.`,
  '',
].join('\n');
const name = wide ? 'keyframes-wide' : 'keyframes';
await mkdir(RESULTS, { recursive: true });
await writeFile(
  new URL(`${name}.json`, RESULTS),
  `${JSON.stringify({ machine, dataset: wide ? { entities: WIDE_ENTITIES } : city, results }, null, 2)}\n`,
);
await writeFile(new URL(`${name}.md`, RESULTS), md);
process.stdout.write(md);
