import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `npm start` as a user runs it: the real process entry, its exit codes and its signals.

const root = new URL('../../', import.meta.url).pathname;

function startServer(env: Record<string, string>) {
  // What `npm start` runs, without npm in between so the signal reaches the server itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

describe('the server process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-process-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('exits non-zero naming every bad variable', async () => {
    const server = startServer({ PORT: 'abc', MAX_PLAYBACK_RANGE: '0', DATABASE_URL: 'nope' });
    expect(await server.exited).toBe(2);
    const out = server.output();
    expect(out).toContain('Invalid configuration');
    expect(out).toContain('PORT: expected a whole number (got "abc")');
    expect(out).toContain('MAX_PLAYBACK_RANGE: must be at least 1');
    expect(out).toContain('DATABASE_URL: expected a postgres:// or postgresql:// URL');
  });

  it('starts on the embedded default and stops on SIGTERM leaving nothing running', async () => {
    const server = startServer({ MSR_DATA_DIR: dir, PORT: '0', DEMO: 'false', LOG_LEVEL: 'info' });
    const deadline = Date.now() + 60_000;
    let port: number | undefined;
    while (!port && Date.now() < deadline) {
      const match = /"port":(\d+),"msg":"MSR listening/.exec(server.output());
      if (match) port = Number(match[1]);
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(port, server.output()).toBeDefined();
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
