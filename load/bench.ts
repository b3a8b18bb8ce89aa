// Benchmark on the 24-hour demo history: seed rate, aggregate refresh, "state at T" against the
// naive DISTINCT ON query, the raw pg-cursor read rate, and the replay figures (replay-bench.ts),
// all in one run on one embedded PostgreSQL.
// Usage: npm run bench            (writes load/results/foundation.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Cursor from 'pg-cursor';
import { startEmbeddedDatabase } from '../server/db/embedded.js';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { installDemo, seedDemoHistory } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import { replayBench } from './replay-bench.js';

const log = createLogger('warn');
const RESULTS = new URL('./results/', import.meta.url);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const dir = await mkdtemp(path.join(tmpdir(), 'msr-bench-'));
const database = await startEmbeddedDatabase(dir, 0, log);
const pool = createPool(database.url, 4, log);
try {
  await migrate(pool, log);
  await installDemo(pool);
  const seed = (await seedDemoHistory(pool, log))!;
  const refreshMs = await timed(() =>
    pool.query(`call refresh_continuous_aggregate('msr.entity_last_states', null, null)`),
  );
  await pool.query('analyze msr.cdc_event');
  await pool.query('analyze msr.entity_last_states');

  const end = seed.epoch.getTime() + 24 * 3_600_000;
  const times = Array.from(
    { length: 30 },
    (_, i) => seed.epoch.getTime() + (((i * 7919) % 1000) / 1000) * (end - seed.epoch.getTime()),
  );
  const keyframe: number[] = [];
  let entities = 0;
  for (const t of times) {
    keyframe.push(
      await timed(async () => {
        const { rows } = await pool.query(
          `select count(*)::int as n from msr.entity_states_at(to_timestamp($1 / 1000.0))`,
          [t],
        );
        entities = rows[0].n;
      }),
    );
  }
  const naive: number[] = [];
  for (const t of times.slice(0, 5)) {
    naive.push(
      await timed(() =>
        pool.query(
          `select count(*) from (
             select distinct on (source, table_schema, table_name, entity_id) op from msr.cdc_event
              where event_timestamp <= to_timestamp($1 / 1000.0)
              order by source, table_schema, table_name, entity_id, event_timestamp desc, id desc) x
            where op not in ('d', 't')`,
          [t],
        ),
      ),
    );
  }
  const client = await pool.connect();
  let rows = 0;
  const cursorMs = await timed(async () => {
    const cursor = client.query(new Cursor(`select * from msr.cdc_event order by event_timestamp, id`));
    for (;;) {
      const batch = await cursor.read(5000);
      if (batch.length === 0) break;
      rows += batch.length;
    }
    await cursor.close();
  });
  client.release();

  const latest = seed.epoch.getTime() + 24 * 3_600_000;
  const replay = await replayBench(database.url, seed.epoch.getTime(), latest);

  const result = {
    machine: `${process.platform} ${process.arch}, node ${process.version}, embedded PostgreSQL 15`,
    seed: { events: seed.events, ms: seed.ms, eventsPerSecond: Math.round((seed.events / seed.ms) * 1000) },
    aggregateRefreshMs: Math.round(refreshMs),
    stateAtT: {
      entities,
      runs: keyframe.length,
      p50Ms: Math.round(percentile(keyframe, 50)),
      p95Ms: Math.round(percentile(keyframe, 95)),
    },
    naiveDistinctOn: {
      runs: naive.length,
      p50Ms: Math.round(percentile(naive, 50)),
      p95Ms: Math.round(percentile(naive, 95)),
    },
    rawCursor: { rows, ms: Math.round(cursorMs), rowsPerSecond: Math.round((rows / cursorMs) * 1000) },
    replay,
  };
  await mkdir(RESULTS, { recursive: true });
  await writeFile(new URL('foundation.json', RESULTS), `${JSON.stringify(result, null, 2)}\n`);
  const md = [
    '# Foundation benchmark',
    '',
    `Machine: ${result.machine}`,
    '',
    '| measure | value |',
    '| --- | --- |',
    `| demo seed | ${result.seed.events} events in ${result.seed.ms} ms (${result.seed.eventsPerSecond} events/s) |`,
    `| entity_last_states refresh | ${result.aggregateRefreshMs} ms |`,
    `| state at T (${entities} entities), p50 / p95 | ${result.stateAtT.p50Ms} / ${result.stateAtT.p95Ms} ms |`,
    `| naive DISTINCT ON, p50 / p95 | ${result.naiveDistinctOn.p50Ms} / ${result.naiveDistinctOn.p95Ms} ms |`,
    `| raw pg-cursor read | ${result.rawCursor.rows} rows at ${result.rawCursor.rowsPerSecond} rows/s |`,
    `| seek to first keyframe byte, p50 / p95 (${replay.seek.entities} entities, over WebSocket) | ${replay.seek.firstByteP50} / ${replay.seek.firstByteP95} ms |`,
    `| seek to complete keyframe, p50 / p95 | ${replay.seek.completeP50} / ${replay.seek.completeP95} ms |`,
    `| one session at max speed | ${replay.maxSpeed.eventsPerSecond} events/s (${Math.round((replay.maxSpeed.eventsPerSecond / result.rawCursor.rowsPerSecond) * 100)} % of the raw cursor) |`,
    `| memory per idle socket / per playing 1x session | ${replay.memory.idleSocketKb} / ${replay.memory.playingSessionKb} KiB |`,
    '',
    '| 1x sessions | all opened in | frames in 10 s | lateness p50 / p99 | database connections |',
    '| --- | --- | --- | --- | --- |',
    ...replay.concurrent.map(
      (c) =>
        `| ${c.sessions} | ${c.openSeconds} s | ${c.frames} | ${c.latenessP50} / ${c.latenessP99} ms | ${c.dbConnections} |`,
    ),
    '',
  ].join('\n');
  await writeFile(new URL('foundation.md', RESULTS), md);
  process.stdout.write(`${md}\n`);
} finally {
  await pool.end();
  await database.stop();
  await rm(dir, { recursive: true, force: true });
}
