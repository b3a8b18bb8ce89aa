// Keyframe benchmark, the figures issue 13 sets targets for, on both dialects in one run: for a
// city (default the large one, 10,000 vehicles, about 2 million events a day), seeded into a fresh
// plain PostgreSQL 15 and a fresh TimescaleDB 2.22.1 server, the state at T (msr.entity_states_at)
// at 30 times of the day, and 30 seeks of one session (first keyframe byte, complete keyframe),
// each dialect's figures taken the same way, so the TimescaleDB / PostgreSQL ratios compare like
// with like. The full picture (baselines, sessions matrix, backup) is `npm run bench`.
// Usage: npm run bench:keyframes [-- demo]   (writes load/results/keyframes.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '../protocol/client.js';
import type { KeyframeMessage } from '../protocol/messages.js';
import { createApp } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import type { Dialect } from '../server/db/dialect.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { DEMO_CITY, installDemo, seedDemoHistory, type CityModel } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import { startBenchDatabase } from './bench-database.js';
import { percentile } from './percentile.js';

const RESULTS = new URL('./results/', import.meta.url);
const LARGE: CityModel = { vehicles: 10_000, minPeriodS: 300, periodSpreadS: 261 };
const city = process.argv.includes('demo') ? DEMO_CITY : LARGE;
const log = createLogger('warn');

interface Figures {
  dialect: Dialect;
  events: number;
  entities: number;
  stateAtT: { p50Ms: number; p95Ms: number };
  seek: { firstByteP50Ms: number; completeP50Ms: number; completeP95Ms: number };
}

async function measure(dialect: Dialect): Promise<Figures> {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-keyframes-'));
  const database = await startBenchDatabase(dialect, dir);
  const pool = createPool(database.url, 4, log);
  try {
    await migrate(pool, log);
    await installDemo(pool);
    const seed = (await seedDemoHistory(pool, log, { city }))!;
    await pool.query(`call refresh_continuous_aggregate('msr.entity_last_states', null, null)`);
    await pool.query('analyze msr.entity_last_states');
    const earliest = seed.epoch.getTime();
    const latest = earliest + 24 * 3_600_000;
    const times = Array.from(
      { length: 30 },
      (_, i) => earliest + (((i * 7919) % 1000) / 1000) * (latest - earliest),
    );

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

    const app = await createApp(
      loadConfig({
        DATABASE_URL: database.url,
        AUTH_MODE: 'none',
        PORT: '0',
        DEMO: 'false',
        AGGREGATE_REFRESH_SECONDS: '0',
      }),
      { log },
    );
    const firstByte: number[] = [];
    const complete: number[] = [];
    try {
      const client = await ReplayClient.connect(`ws://127.0.0.1:${app.port}/v1/replay`, {
        webSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
        validate: false,
      });
      await client.open({ from: earliest, to: latest, at: earliest });
      for (const t of times) {
        const first = client.waitFor((m) => m.type === 'keyframe', 120_000);
        const done = client.waitFor((m): m is KeyframeMessage => m.type === 'keyframe' && m.last, 120_000);
        const started = performance.now();
        await client.seek(Math.round(t));
        await first;
        firstByte.push(performance.now() - started);
        await done;
        complete.push(performance.now() - started);
      }
      await client.close();
    } finally {
      await app.stop();
    }
    const ms = (values: number[], p: number) => Math.round(percentile(values, p));
    return {
      dialect,
      events: seed.events,
      entities,
      stateAtT: { p50Ms: ms(state, 50), p95Ms: ms(state, 95) },
      seek: {
        firstByteP50Ms: ms(firstByte, 50),
        completeP50Ms: ms(complete, 50),
        completeP95Ms: ms(complete, 95),
      },
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
const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const md = [
  `# Keyframes on both dialects: ${city.vehicles} vehicles, ${pgFigures.events} events in 24 h`,
  '',
  `Machine: ${machine}. Plain PostgreSQL 15 (embedded) and TimescaleDB 2.22.1 on PostgreSQL 15, fresh each, same seed.`,
  '',
  '| figure | PostgreSQL | TimescaleDB | TimescaleDB / PostgreSQL |',
  '| --- | --- | --- | --- |',
  `| state at T, p50 / p95 (${pgFigures.entities} entities) | ${pgFigures.stateAtT.p50Ms} / ${pgFigures.stateAtT.p95Ms} ms | ${ts.stateAtT.p50Ms} / ${ts.stateAtT.p95Ms} ms | ${ratio(ts.stateAtT.p50Ms, pgFigures.stateAtT.p50Ms)} / ${ratio(ts.stateAtT.p95Ms, pgFigures.stateAtT.p95Ms)} |`,
  `| seek to first keyframe byte, p50 | ${pgFigures.seek.firstByteP50Ms} ms | ${ts.seek.firstByteP50Ms} ms | ${ratio(ts.seek.firstByteP50Ms, pgFigures.seek.firstByteP50Ms)} |`,
  `| seek to complete keyframe, p50 / p95 | ${pgFigures.seek.completeP50Ms} / ${pgFigures.seek.completeP95Ms} ms | ${ts.seek.completeP50Ms} / ${ts.seek.completeP95Ms} ms | ${ratio(ts.seek.completeP50Ms, pgFigures.seek.completeP50Ms)} / ${ratio(ts.seek.completeP95Ms, pgFigures.seek.completeP95Ms)} |`,
  '',
].join('\n');
await mkdir(RESULTS, { recursive: true });
await writeFile(
  new URL('keyframes.json', RESULTS),
  `${JSON.stringify({ machine, city, results }, null, 2)}\n`,
);
await writeFile(new URL('keyframes.md', RESULTS), md);
process.stdout.write(md);
