import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArguments } from '../../scripts/build-server.js';
import { startServerProcess } from '../support/process.js';

// `npm start` as a user runs it: the real process entry, its exit codes and its signals.

describe('the server process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-process-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('runs in the image as npm start runs it', async () => {
    const dockerfile = await readFile(new URL('../../Dockerfile', import.meta.url), 'utf8');
    const cmd = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]!) as string[];
    const root = new URL('../../', import.meta.url).pathname;
    expect(cmd).toEqual(['node', ...(await startArguments()).map((a) => a.replace(root, ''))]);
    expect(cmd).toContain('--max-semi-space-size=4');
  });

  it('exits non-zero naming every bad variable', async () => {
    const server = startServerProcess({ PORT: 'abc', MAX_PLAYBACK_RANGE: '0', DATABASE_URL: 'nope' });
    expect(await server.exited).toBe(2);
    const out = server.output();
    expect(out).toContain('Invalid configuration');
    expect(out).toContain('PORT: expected a whole number (got "abc")');
    expect(out).toContain('MAX_PLAYBACK_RANGE: must be at least 1');
    expect(out).toContain('DATABASE_URL: expected a postgres:// or postgresql:// URL');
  });

  it('starts on the embedded default and stops on SIGTERM leaving nothing running', async () => {
    const server = startServerProcess({ MSR_DATA_DIR: dir, PORT: '0', DEMO: 'false', LOG_LEVEL: 'info' });
    const port = await server.port();
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const pidFile = path.join(dir, 'pg', 'postmaster.pid');
    expect(existsSync(pidFile)).toBe(true);

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    // PostgreSQL shut down cleanly (it removes its pid file) and the port is closed.
    expect(existsSync(pidFile)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
