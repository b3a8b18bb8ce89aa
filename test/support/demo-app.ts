import type { App } from '../../server/app.js';
import type { Logger } from 'pino';
import { createTestDatabase, type TestDatabase } from './database.js';
import { demoLive } from './wait.js';
import { startMsr } from '../../scripts/services/msr.js';

/**
 * A server with the live demo (20 minutes of seeded history, then live movements) on a test
 * database of its own, for the browser and load tests; resolves once the demo moves live.
 */
export async function startDemoApp(
  maxActiveSessions: number,
  log: Logger,
): Promise<{ db: TestDatabase; app: App }> {
  const db = await createTestDatabase();
  const app = await startMsr(
    db.url,
    { DEMO: 'true', DB_POOL_SIZE: '4', MAX_ACTIVE_SESSIONS: String(maxActiveSessions) },
    { log, demoHistoryMs: 20 * 60_000 },
  );
  await demoLive(app);
  return { db, app };
}
