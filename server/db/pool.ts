import pg from 'pg';
import type { Logger } from 'pino';
import { pgClientConfig } from './tls.js';

export function createPool(url: string, size: number, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    ...pgClientConfig(url),
    max: size,
    // Sessions queue for the fixed pool under load (200 keyframes at once); waiting is the design,
    // a short timeout would turn a busy minute into failed seeks.
    connectionTimeoutMillis: 60_000,
    idleTimeoutMillis: 30_000,
    application_name: 'msr',
  });
  // An idle client losing its connection (database restart) must not crash the process.
  // (The error carries its whole client; log what helps, not that.)
  pool.on('error', (err: Error & { code?: string }) =>
    log.warn({ error: err.message, code: err.code }, 'idle database connection failed'),
  );
  // A checked-out client between two queries has no such handler: its connection dropping would
  // be an uncaught 'error' event. The next query on it fails and its holder handles that.
  pool.on('connect', (client) =>
    client.on('error', (err: Error & { code?: string }) =>
      log.warn({ error: err.message, code: err.code }, 'database connection failed while in use'),
    ),
  );
  return pool;
}
