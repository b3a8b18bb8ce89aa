import pg from 'pg';
import type { App, AppOptions } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { startMsr } from '../../scripts/services/msr.js';

/**
 * A source database for the built-in capture: an empty database on the run's server (which runs
 * with wal_level=logical), with a pool whose connections may be cut by the test (a stopped
 * capture, a dropped database) without an unhandled error.
 */
export async function createSourceDatabase(): Promise<TestDatabase> {
  const source = await createTestDatabase({ migrated: false });
  source.pool.on('error', () => undefined);
  return source;
}

/** Waits until no walsender streams a slot of this database any more (a stopped capture's). */
export async function slotsIdle(source: TestDatabase): Promise<void> {
  const client = new pg.Client({ connectionString: source.url });
  await client.connect();
  try {
    for (let i = 0; i < 100; i++) {
      const { rowCount } = await client.query(
        'select 1 from pg_replication_slots where database = current_database() and active',
      );
      if (rowCount === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('a replication slot is still streamed');
  } finally {
    await client.end();
  }
}

/**
 * The server with the built-in capture on `source`, storing into `db` under the source name
 * `name`, quick to retry; `env` adds or overrides settings.
 */
export function startCaptureApp(
  db: TestDatabase,
  source: TestDatabase,
  name: string,
  env: Record<string, string> = {},
  options: AppOptions = {},
): Promise<App> {
  return startMsr(
    db.url,
    { CAPTURE_SOURCE_URL: source.url, CAPTURE_SOURCE_NAME: name, ...env },
    { log: createLogger('silent'), ...options, capture: { retryMs: 200, ...options.capture } },
  );
}
