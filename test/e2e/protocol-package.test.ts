import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { chromiumAvailable, launchChromium } from '../../scripts/services/browser.js';
import type { TestDatabase } from '../support/database.js';
import { startDemoApp } from '../support/demo-app.js';

// @msr/protocol as another project gets it: built (npm run build -w @msr/protocol), packed, and
// installed from the tarball into an empty project. There it replays against a running server from
// plain `node` (Node 20, no TypeScript, no flags, no WebSocket factory) and, bundled for the
// browser, from a page in Chromium; each time the client's map must equal GET /api/v1/state at
// the keyframe's time and where play-until stopped. Its declarations type-check a consumer and
// refuse a wrong call.

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const fixtures = new URL('../fixtures/protocol-consumer/', import.meta.url).pathname;
const log = createLogger('silent');

interface Snapshot {
  t: number;
  entries: [string, Record<string, unknown>][];
}
interface CheckResult {
  subprotocol: string;
  keyframe: Snapshot;
  playedUntil: Snapshot;
  refused: string;
}

describe('the @msr/protocol package', () => {
  let work: string;
  let project: string;
  let db: TestDatabase;
  let app: App;
  let built: string[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'msr-protocol-package-'));
    const dist = path.join(work, 'dist');
    project = path.join(work, 'project');
    const [started] = await Promise.all([
      startDemoApp(4, log),
      (async () => {
        await run(process.execPath, ['--import', 'tsx', 'protocol/build.ts', '--out', dist], { cwd: root });
        built = await readdir(dist);
        await run('npm', ['pack', dist, '--pack-destination', work], { cwd: work });
        await run('mkdir', ['-p', project]);
        await writeFile(
          path.join(project, 'package.json'),
          JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
        );
        const tarball = path.join(work, 'msr-protocol-0.1.0.tgz');
        await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
          cwd: project,
        });
        for (const file of await readdir(fixtures)) {
          await copyFile(path.join(fixtures, file), path.join(project, file));
        }
      })(),
    ]);
    ({ db, app } = started);
  }, 240_000);

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The client's map must equal the server's state at the same time, entity for entity. */
  const expectStateAt = async (snapshot: Snapshot) => {
    const response = await fetch(`http://127.0.0.1:${app.port}/api/v1/state?t=${snapshot.t}`);
    const body = (await response.json()) as {
      entities: { table: string; id: string; state: Record<string, unknown> }[];
    };
    const expected = body.entities
      .map((e): [string, Record<string, unknown>] => [`${e.table}|${e.id}`, e.state])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    expect(snapshot.entries.length).toBeGreaterThan(100);
    expect(snapshot.entries).toEqual(expected);
  };

  const expectReplay = async (result: CheckResult) => {
    await expectStateAt(result.keyframe);
    await expectStateAt(result.playedUntil);
    expect(result.playedUntil.t).toBe(result.keyframe.t + 20_000);
    expect(result.refused).toBe('OUT_OF_RANGE');
  };

  it('holds ESM, declarations and no server code', async () => {
    expect(built).toEqual(
      expect.arrayContaining(['index.js', 'index.d.ts', 'client-core.js', 'package.json']),
    );
    expect(built.some((f) => /decode-client|outgoing|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toBe(false);
    const manifest = JSON.parse(
      await readFile(path.join(project, 'node_modules/@msr/protocol/package.json'), 'utf8'),
    );
    expect(manifest.exports['.']).toEqual({ types: './index.d.ts', default: './index.js' });
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['msgpackr', 'ws', 'zod']);
    for (const file of built.filter((f) => f.endsWith('.js'))) {
      const code = await readFile(path.join(work, 'dist', file), 'utf8');
      expect(code, file).not.toMatch(/from ['"](pg|pino|uWebSockets\.js|kafkajs)['"]|server\//);
    }
  });

  it('replays from plain node on Node 20, with no WebSocket factory given', async () => {
    const { stdout } = await run(
      process.execPath,
      ['node-main.mjs', `ws://127.0.0.1:${app.port}/v1/replay`, `http://127.0.0.1:${app.port}`],
      { cwd: project, env: { PATH: process.env.PATH } },
    );
    const result = JSON.parse(stdout) as CheckResult & { node: string; hasGlobalWebSocket: boolean };
    expect(result.node).toBe(process.version);
    console.log(`@msr/protocol in ${result.node} (global WebSocket: ${result.hasGlobalWebSocket})`);
    expect(result.subprotocol).toBe('msr.v1.json');
    await expectReplay(result);
  });

  it.skipIf(!chromiumAvailable && !process.env.CI)(
    'replays from a page in Chromium, over msgpack',
    async () => {
      const bundle = await build({
        entryPoints: [path.join(project, 'browser-main.mjs')],
        absWorkingDir: project,
        bundle: true,
        format: 'esm',
        platform: 'browser',
        write: false,
      });
      const code = bundle.outputFiles[0]!.text;
      // The package's Node fallback stays out of a browser bundle (its manifest maps ws to nothing).
      expect(code).not.toMatch(/require\(["']ws["']\)|from ["']ws["']/);
      let browser: Browser | undefined;
      try {
        browser = await launchChromium();
        const page = await browser.newPage();
        const origin = `http://127.0.0.1:${app.port}`;
        await page.route(`${origin}/package-check.html`, (route) =>
          route.fulfill({
            contentType: 'text/html',
            body: '<!doctype html><script type="module" src="/package-check.js"></script>',
          }),
        );
        await page.route(`${origin}/package-check.js`, (route) =>
          route.fulfill({ contentType: 'text/javascript', body: code }),
        );
        await page.goto(`${origin}/package-check.html`);
        await page.waitForFunction(() => 'replayResult' in window);
        const result = (await page.evaluate(
          () => (window as unknown as { replayResult: Promise<unknown> }).replayResult,
        )) as CheckResult;
        expect(result.subprotocol).toBe('msr.v1.msgpack');
        await expectReplay(result);
      } finally {
        await browser?.close();
      }
    },
  );

  it('types a consumer and refuses a wrong call', async () => {
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    const options = [
      ...['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--lib', 'es2022,dom'],
      ...['--module', 'nodenext', '--moduleResolution', 'nodenext'],
    ];
    await run(process.execPath, [tsc, ...options, 'consumer.ts'], { cwd: project });
    const wrong = await run(process.execPath, [tsc, ...options, 'consumer-wrong.ts'], {
      cwd: project,
    }).catch((err: { stdout: string }) => err);
    const output = (wrong as { stdout: string }).stdout;
    expect(output).toMatch(/consumer-wrong\.ts\(5,\d+\): error TS2345/);
    expect(output).toMatch(/consumer-wrong\.ts\(6,\d+\): error TS2345/);
  });
});
