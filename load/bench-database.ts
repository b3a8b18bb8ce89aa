import pg from 'pg';
import type { Dialect } from '../server/db/dialect.js';
import { startEmbeddedDatabase } from '../server/db/embedded.js';
import { createLogger } from '../server/logger.js';
import { startTimescaleServer } from '../scripts/services/timescaledb-server.js';

/**
 * A fresh server of the dialect with an empty `msr` database: embedded PostgreSQL 15, or a
 * TimescaleDB 2.22.1 server on Debian's PostgreSQL 15.
 */
export async function startBenchDatabase(
  dialect: Dialect,
  dir: string,
): Promise<{ url: string; stop(): Promise<void> }> {
  if (dialect === 'postgres') return startEmbeddedDatabase(dir, 0, createLogger('warn'));
  const server = await startTimescaleServer(dir);
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query('create database msr');
  await admin.end();
  return { url: server.adminUrl.replace(/\/postgres$/, '/msr'), stop: () => server.stop() };
}
