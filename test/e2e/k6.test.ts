import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import type { TestDatabase } from '../support/database.js';
import { startDemoApp } from '../support/demo-app.js';

// A short smoke run of load/k6/replay.js with real k6 (built from source by scripts/ensure-k6.sh)
// against the real server with demo history: sessions open, keyframes complete, frames flow at
// 1x, 10x and max, seeks happen, nothing errors, and the thresholds pass.

const root = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

/** The fields of k6's --summary-export this test reads (counters, trends, the checks rate). */
interface Metric {
  count: number;
  avg: number;
  'p(95)': number;
  passes: number;
  fails: number;
  thresholds?: Record<string, boolean>;
}
interface Summary {
  metrics: Record<string, Metric>;
}

describe('k6 replay load script (smoke)', () => {
  let db: TestDatabase;
  let app: App;
  let k6: string;
  let dir: string;

  beforeAll(async () => {
    // Built once per machine and cached; pretest normally did it already.
    k6 = (await run('bash', [`${root}scripts/ensure-k6.sh`], { timeout: 900_000 })).stdout.trim();
    dir = await mkdtemp(path.join(tmpdir(), 'msr-k6-'));
    await mkdir(path.join(root, 'test-artifacts'), { recursive: true });
    ({ db, app } = await startDemoApp(20, createLogger('silent')));
  }, 900_000);
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('opens sessions, plays at 1x, 10x and max, seeks, closes, and passes its thresholds', async () => {
    const summaryFile = path.join(dir, 'summary.json');
    const result = await run(
      k6,
      ['run', '--quiet', '--no-usage-report', '--summary-export', summaryFile, 'load/k6/replay.js'],
      {
        cwd: root,
        timeout: 120_000,
        env: {
          ...process.env,
          MSR_URL: `ws://127.0.0.1:${app.port}`,
          VUS: '2',
          DURATION: '9s',
          SESSION_SECONDS: '6',
          SEEK_EVERY_S: '2',
          K6_NO_COLOR: 'true',
        },
      },
    ).catch((err: { code: number; stdout: string; stderr: string }) => err);
    const summary = JSON.parse(await readFile(summaryFile, 'utf8')) as Summary;
    const m = summary.metrics;
    await writeFile(path.join(root, 'test-artifacts', 'k6-summary.json'), JSON.stringify(summary, null, 2));
    const failed = Object.entries(m).flatMap(([name, metric]) =>
      Object.entries(metric.thresholds ?? {})
        .filter(([, crossed]) => crossed)
        .map(([t]) => `${name}: ${t}`),
    );
    expect(failed, JSON.stringify(result).slice(0, 2000)).toEqual([]);
    expect('code' in result ? result.code : 0).toBe(0);

    // Six VUs (two per speed) each held at least one session with a keyframe of the demo city.
    expect(m.msr_sessions!.count).toBeGreaterThanOrEqual(6);
    expect(m.msr_keyframes!.count).toBeGreaterThan(m.msr_sessions!.count); // seeks made more
    expect(m.msr_keyframe_ms!['p(95)']).toBeGreaterThan(0);
    expect(m.msr_entities!.count).toBeGreaterThan(1000);
    expect(m.msr_frames!.count).toBeGreaterThan(20);
    expect(m.msr_frame_bytes!.count).toBeGreaterThan(m.msr_frames!.count * 50);
    expect(m.msr_frame_lateness_ms!['p(95)']).toBeLessThan(500);
    expect(m.msr_errors?.count ?? 0).toBe(0);
    expect(m.checks!.passes).toBeGreaterThan(0);
    expect(m.checks!.fails).toBe(0);

    // The server counted the same traffic.
    const text = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('msr_frames_sent_total')).toBeGreaterThanOrEqual(m.msr_frames!.count);
    expect(value('msr_bytes_sent_total')).toBeGreaterThan(m.msr_frame_bytes!.count);
    expect(value('msr_seek_seconds_count')).toBeGreaterThanOrEqual(m.msr_keyframes!.count);
    expect(value('msr_frame_lateness_seconds_count')).toBeGreaterThan(0);
    expect(value('msr_db_pool_connections{state="total"}')).toBeLessThanOrEqual(4);
    expect(text).toMatch(/^msr_sessions \d+$/m);
  });
});
