// The player in a real browser with a large city: how long a scrub takes from its release to the
// new state drawn, and the longest main-thread task while a keyframe of every entity arrives.
// A fresh embedded PostgreSQL gets an hour of a 10,000-vehicle city (or the demo city with `demo`);
// the server runs in this process and Debian's Chromium loads its viewer at /.
// Usage: npm run bench:viewer [-- demo]   (writes load/results/viewer.{json,md})
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { migrate } from '../server/db/migrate.js';
import { createPool } from '../server/db/pool.js';
import { DEMO_CITY, installDemo, seedDemoHistory, type CityModel } from '../server/demo/seed.js';
import { createLogger } from '../server/logger.js';
import { launchChromium } from '../scripts/services/browser.js';
import { startBenchDatabase } from './bench-database.js';
import { startMsr } from '../scripts/services/msr.js';
import { percentile } from './percentile.js';
import { REFRESH_AGGREGATE } from '../server/db/sql-fragments.js';

const RESULTS = new URL('./results/', import.meta.url);
const LARGE: CityModel = { vehicles: 10_000, minPeriodS: 300, periodSpreadS: 261 };
const city = process.argv.includes('demo') ? DEMO_CITY : LARGE;
const HISTORY_MS = 3_600_000;
const SCRUBS = 12;
const log = createLogger('warn');

// Runs in the page: the player's client, its replay time and whether its keyframe is all in.
declare const document: { querySelector(s: string): unknown };
type PlayerElement = { client?: { t: number; keyframeComplete: boolean; state: Map<string, unknown> } };

const dir = await mkdtemp(path.join(tmpdir(), 'msr-viewer-bench-'));
const database = await startBenchDatabase('postgres', dir);
const pool = createPool(database.url, 4, log);
await migrate(pool, log);
await installDemo(pool);
const seed = (await seedDemoHistory(pool, log, { city, historyMs: HISTORY_MS }))!;
await pool.query(REFRESH_AGGREGATE);
await pool.query('analyze');
await pool.end();
const app = await startMsr(database.url, { MAX_ACTIVE_SESSIONS: '4' }, { log });
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
  await page.addInitScript(() => {
    const tasks: number[] = [];
    new PerformanceObserver((list) => list.getEntries().forEach((e) => tasks.push(e.duration))).observe({
      type: 'longtask',
      buffered: true,
    });
    Object.assign(window, { longTasks: tasks });
  });
  const origin = `http://127.0.0.1:${app.port}`;
  const latest = seed.epoch.getTime() + HISTORY_MS;
  await page.goto(`${origin}/?t=${latest - 60_000}`);
  await page.waitForFunction(
    (n) => {
      const client = (document.querySelector('msr-player') as PlayerElement).client;
      return client !== undefined && client.keyframeComplete && client.state.size >= n;
    },
    city.vehicles * 0.95,
    { timeout: 120_000 },
  );
  const firstKeyframeTasks = await page.evaluate(() =>
    (window as unknown as { longTasks: number[] }).longTasks.splice(0),
  );
  const entities = await page.evaluate(
    () => (document.querySelector('msr-player') as PlayerElement).client!.state.size,
  );

  const scrubMs: number[] = [];
  const scrubTasks: number[] = [];
  for (let i = 0; i < SCRUBS; i++) {
    const target =
      Math.round((seed.epoch.getTime() + (((i * 7919) % 1000) / 1000) * (HISTORY_MS - 120_000)) / 1000) *
      1000;
    const started = Date.now();
    await page.$eval(
      'msr-player',
      (el, t) => {
        const input = el.shadowRoot!.getElementById('timeline') as HTMLInputElement;
        input.value = String(t);
        input.dispatchEvent(new Event('change'));
      },
      target,
    );
    // Drawn: the frame after the last keyframe part at the target was applied.
    await page.waitForFunction(
      (t) =>
        new Promise<boolean>((resolve) =>
          requestAnimationFrame(() => {
            const client = (document.querySelector('msr-player') as PlayerElement).client!;
            resolve(client.keyframeComplete && Math.abs(client.t - t) < 1000);
          }),
        ),
      target,
      { timeout: 60_000, polling: 'raf' },
    );
    scrubMs.push(Date.now() - started);
    scrubTasks.push(
      ...(await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks.splice(0))),
    );
  }
  const script = await (await fetch(`${origin}/msr-player.js`)).arrayBuffer();
  const figures = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    city: `${city.vehicles} vehicles, ${seed.events} events in ${HISTORY_MS / 60_000} minutes`,
    entities,
    scrubToDrawnMs: {
      p50: Math.round(percentile(scrubMs, 50)),
      p95: Math.round(percentile(scrubMs, 95)),
      max: Math.max(...scrubMs),
    },
    longestTaskMs: {
      firstKeyframe: Math.round(Math.max(0, ...firstKeyframeTasks)),
      scrubs: Math.round(Math.max(0, ...scrubTasks)),
    },
    tasksOver100Ms: [...firstKeyframeTasks, ...scrubTasks].filter((d) => d > 100).length,
    playerGzipKb: Math.round(gzipSync(Buffer.from(script)).byteLength / 102.4) / 10,
  };
  await mkdir(RESULTS, { recursive: true });
  await writeFile(new URL('viewer.json', RESULTS), `${JSON.stringify(figures, null, 2)}\n`);
  const md = [
    '# MSR viewer benchmark',
    '',
    `${figures.machine}; Chromium (Debian), embedded PostgreSQL 15; ${figures.city}; ${entities} entities in the keyframe.`,
    '',
    '| measure | value |',
    '| --- | --- |',
    `| scrub release to the new state drawn (${SCRUBS} scrubs), p50 / p95 / max | ${figures.scrubToDrawnMs.p50} / ${figures.scrubToDrawnMs.p95} / ${figures.scrubToDrawnMs.max} ms |`,
    `| longest main-thread task: first keyframe / scrubs | ${figures.longestTaskMs.firstKeyframe} / ${figures.longestTaskMs.scrubs} ms |`,
    `| main-thread tasks over 100 ms | ${figures.tasksOver100Ms} |`,
    `| /msr-player.js gzipped | ${figures.playerGzipKb} KB |`,
    '',
  ].join('\n');
  await writeFile(new URL('viewer.md', RESULTS), md);
  console.log(md);
} finally {
  await browser.close();
  await app.stop();
  await database.stop();
  await rm(dir, { recursive: true, force: true });
}
