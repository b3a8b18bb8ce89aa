import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../server/db/embedded.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

export interface TimescaleServer {
  /** URL of the `postgres` database, as the superuser. */
  readonly adminUrl: string;
  readonly port: number;
  readonly binDir: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** TimescaleDB could not be installed here (not root); outside CI its tests are skipped. */
export class TimescaleUnavailable extends Error {}

/**
 * Installs (scripts/ensure-timescaledb.sh: built once per machine from ../shared/timescaledb) and
 * returns PostgreSQL 15's program directory with TimescaleDB 2.22.1 in it.
 */
export async function ensureTimescaleDb(): Promise<string> {
  try {
    const { stdout } = await run('bash', [path.join(root, 'scripts/ensure-timescaledb.sh')], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout.trim().split('\n').pop()!;
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    if (e.code === 3) {
      throw new TimescaleUnavailable(e.stderr?.trim() ?? 'TimescaleDB is not installed', { cause: err });
    }
    throw new Error(`scripts/ensure-timescaledb.sh failed: ${e.stderr ?? String(err)}`, { cause: err });
  }
}

/**
 * A real TimescaleDB 2.22.1 server on Debian's PostgreSQL 15: its own data directory, a free port on
 * 127.0.0.1, the extension preloaded and its background workers on (refresh policies run), trust
 * authentication for local TCP only. Runs as the `postgres` user when started as root.
 */
export async function startTimescaleServer(
  dir: string,
  extraSettings: string[] = [],
): Promise<TimescaleServer> {
  const binDir = await ensureTimescaleDb();
  const dataDir = path.join(dir, 'data');
  await mkdir(dir, { recursive: true });
  // PostgreSQL refuses to run as root: then it runs as the `postgres` user (Debian's package made it).
  const owner: { uid?: number; gid?: number } = userInfo().uid === 0 ? await postgresUser() : {};
  if (owner.uid !== undefined) await chmod(dir, 0o777);
  await run(
    path.join(binDir, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C'],
    owner,
  );
  const port = await freePort();
  await writeFile(
    path.join(dataDir, 'postgresql.auto.conf'),
    [
      "shared_preload_libraries = 'timescaledb'",
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      "unix_socket_directories = ''",
      'max_connections = 300',
      'shared_buffers = 256MB',
      'wal_level = logical',
      'max_wal_senders = 64',
      'max_replication_slots = 64',
      // Every database with the extension holds a scheduler worker for as long as it exists, and
      // test files keep tens of databases at once: at 16, later databases got no scheduler and
      // their jobs never ran (start_background_workers() returned false).
      'timescaledb.max_background_workers = 128',
      'max_worker_processes = 140',
      "timescaledb.telemetry_level = 'off'",
      ...extraSettings,
      '',
    ].join('\n'),
  );
  const child = spawn(path.join(binDir, 'postgres'), ['-D', dataDir], {
    ...owner,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitUntilReady(adminUrl, child, () => log);
  return {
    adminUrl,
    port,
    binDir,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode !== null) return;
      // SIGINT: PostgreSQL's fast shutdown (sessions ended, checkpoint written).
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  return { uid: await id('-u'), gid: await id('-g') };
}

async function waitUntilReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`TimescaleDB server exited at start:\n${log()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('select 1');
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`TimescaleDB server not ready: ${String(err)}\n${log()}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
