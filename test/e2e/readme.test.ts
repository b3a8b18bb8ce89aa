import { execFile, spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { demoLive } from '../support/wait.js';
import { startMsr } from '../../scripts/services/msr.js';

// The README's code blocks that users copy and run, run as written against a started server with
// the demo city (only the port differs: 8080 becomes the test server's), so the README cannot drift.
const root = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

/** The fenced blocks of one language in the README, in order. */
function blocks(readme: string, language: string): string[] {
  return [...readme.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

describe("the README's examples", () => {
  let db: TestDatabase;
  let app: App;
  let readme: string;
  const onPort = (text: string) => text.replaceAll('localhost:8080', `localhost:${app.port}`);
  beforeAll(async () => {
    readme = await readFile(`${root}README.md`, 'utf8');
    db = await createTestDatabase();
    app = await startMsr(
      db.url,
      { DEMO: 'true', DB_POOL_SIZE: '4' },
      { log: createLogger('silent'), demoHistoryMs: 2 * 3_600_000 },
    );
    await demoLive(app);
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('the curl lines of "Two commands" answer as their comments say', async () => {
    const block = blocks(readme, 'sh').find((b) => b.includes('curl localhost:8080/healthz'));
    expect(block).toBeDefined();
    const lines = block!.split('\n').filter((l) => l.startsWith('curl '));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      const [command, comment = ''] = line.split(/\s+#\s+/);
      const { stdout } = await run('bash', ['-c', `${onPort(command!)} --fail --silent --show-error`]);
      const body = JSON.parse(stdout);
      // A comment that is a whole JSON document is the exact answer; otherwise it names the fields.
      if (comment.startsWith('{"')) expect(body).toEqual(JSON.parse(comment));
      for (const field of comment.match(/(?<=[{,]\s?)[a-zA-Z]+(?=[,}])/g) ?? [])
        expect(body).toHaveProperty(field);
    }
  });

  it('the client example, copied into a file as it is, prints frames on this Node', async () => {
    const example = blocks(readme, 'ts').find((b) => b.includes('ReplayClient.connect'));
    expect(example).toBeDefined();
    // Beside the README, as a user copying it into the project would put it.
    const file = `${root}.readme-example-${process.pid}.ts`;
    await writeFile(file, onPort(example!));
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    try {
      const printed = await new Promise<string[]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no frames within 30 s: ${stderr}`)), 30_000);
        child.on('exit', (code) => reject(new Error(`the example exited with ${code}: ${stderr}`)));
        child.stdout.on('data', () => {
          const lines = stdout.trim().split('\n');
          if (lines.length >= 5) {
            clearTimeout(timer);
            resolve(lines);
          }
        });
      });
      // Each frame line: the replay time and the number of vehicles in the client's map.
      for (const line of printed) expect(line).toMatch(/^\d{13}(\.\d+)? [1-9]\d*$/);
      const times = printed.map((l) => Number(l.split(' ')[0]));
      expect(times.at(-1)!).toBeGreaterThan(times[0]!);
    } finally {
      child.kill('SIGKILL');
      await rm(file, { force: true });
    }
  });

  it("the operators' SQL entry points run as written on this dialect", async () => {
    const block = blocks(readme, 'sql').find((b) => b.includes('msr.entity_states_at'));
    expect(block).toBeDefined();
    const statements = block!
      .split('\n')
      .map((line) => line.replace(/\s+--.*$/, '').trim())
      .filter((line) => line.length > 0);
    expect(statements.length).toBeGreaterThanOrEqual(3);
    // One at a time, outside a transaction block, as psql runs them.
    for (const statement of statements) await db.pool.query(statement);
    const { rows } = await db.pool.query<{ n: number }>(
      'select count(*)::int as n from msr.entity_states_at(now())',
    );
    expect(rows[0]!.n).toBeGreaterThan(0);
  });
});
