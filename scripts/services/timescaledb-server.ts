import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startPostgresServer, type PostgresServer } from './postgres-server.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

export type TimescaleServer = PostgresServer;

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
  return startPostgresServer(dir, binDir, [
    "shared_preload_libraries = 'timescaledb'",
    // Every database with the extension holds a scheduler worker for as long as it exists, and
    // test files keep tens of databases at once: at 16, later databases got no scheduler and
    // their jobs never ran (start_background_workers() returned false).
    'timescaledb.max_background_workers = 128',
    'max_worker_processes = 140',
    "timescaledb.telemetry_level = 'off'",
    ...extraSettings,
  ]);
}
