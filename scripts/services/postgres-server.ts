import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chmod, mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../server/db/embedded.js';

const run = promisify(execFile);

export interface PostgresServer {
  /** URL of the `postgres` database, as the superuser. */
  readonly adminUrl: string;
  readonly port: number;
  readonly binDir: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Fast shutdown (sessions ended, checkpoint written). */
  stop(): Promise<void>;
  /** A crash: SIGKILL, nothing written. */
  kill(): Promise<void>;
}

/**
 * A PostgreSQL server of the given programs with its own data directory under `dir`, a free port
 * on 127.0.0.1, trust authentication for local TCP only (replication included), and WAL for
 * logical decoding and standbys. Runs as the `postgres` user when started as root (PostgreSQL
 * refuses root; Debian's package made that user).
 */
export async function startPostgresServer(
  dir: string,
  binDir: string,
  settings: string[] = [],
): Promise<PostgresServer> {
  const dataDir = path.join(dir, 'data');
  const owner = await serverOwner(dir);
  await run(
    path.join(binDir, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C'],
    owner,
  );
  await writeFile(
    path.join(dataDir, 'postgresql.auto.conf'),
    [
      'max_connections = 300',
      'shared_buffers = 256MB',
      'wal_level = logical',
      'max_wal_senders = 64',
      'max_replication_slots = 64',
      ...settings,
      '',
    ].join('\n'),
  );
  return launch(binDir, dataDir, owner);
}

/**
 * A hot standby of `primary` with streaming replication: a base backup taken with Debian's
 * pg_basebackup (`-R` writes primary_conninfo and standby.signal), run by the primary's programs.
 */
export async function startStandby(
  primary: PostgresServer,
  dir: string,
  basebackupBinDir: string,
): Promise<PostgresServer> {
  const dataDir = path.join(dir, 'data');
  const owner = await serverOwner(dir);
  await run(
    path.join(basebackupBinDir, 'pg_basebackup'),
    [
      '-D',
      dataDir,
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
    ],
    owner,
  );
  return launch(primary.binDir, dataDir, owner, ['hot_standby = on', 'hot_standby_feedback = on']);
}

/**
 * Stops `server` (fast shutdown) and starts it again on the same port with `settings` added (a
 * setting that needs a restart, such as wal_level).
 */
export async function restartPostgresServer(
  server: PostgresServer,
  settings: string[],
): Promise<PostgresServer> {
  await server.stop();
  const owner = await serverOwner(path.dirname(server.dataDir));
  return launch(server.binDir, server.dataDir, owner, settings, server.port);
}

async function serverOwner(dir: string): Promise<{ uid?: number; gid?: number }> {
  await mkdir(dir, { recursive: true });
  if (userInfo().uid !== 0) return {};
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  await chmod(dir, 0o777);
  return { uid: await id('-u'), gid: await id('-g') };
}

/** Starts the server of `dataDir` on `port` or a free one (later lines of the auto.conf win) and waits for it. */
async function launch(
  binDir: string,
  dataDir: string,
  owner: { uid?: number; gid?: number },
  settings: string[] = [],
  chosenPort?: number,
): Promise<PostgresServer> {
  const port = chosenPort ?? (await freePort());
  await appendFile(
    path.join(dataDir, 'postgresql.auto.conf'),
    [
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      "unix_socket_directories = ''",
      ...settings,
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
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    adminUrl,
    port,
    binDir,
    dataDir,
    pid: child.pid!,
    // SIGINT: PostgreSQL's fast shutdown.
    stop: () => end('SIGINT'),
    kill: () => end('SIGKILL'),
  };
}

async function waitUntilReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`PostgreSQL server exited at start:\n${log()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('select 1');
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`PostgreSQL server not ready: ${String(err)}\n${log()}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
