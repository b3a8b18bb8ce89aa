import pg from 'pg';
import { migrate } from '../../server/db/migrate.js';
import { createLogger } from '../../server/logger.js';

export const TEMPLATE_DB = 'msr_template';

/**
 * Creates the migrated template database each test file copies. It is marked as a template that
 * refuses connections, which also keeps TimescaleDB's job scheduler out of it: a database with a
 * connection open cannot be copied.
 */
export async function createTemplate(adminUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE_DB}`);
    await admin.query(`create database ${TEMPLATE_DB}`);
    const pool = new pg.Pool({
      connectionString: adminUrl.replace(/\/postgres$/, `/${TEMPLATE_DB}`),
      max: 2,
    });
    try {
      await migrate(pool, createLogger('warn'));
    } finally {
      await pool.end();
    }
    // No connection may be open to a database being copied: as a template that refuses connections
    // nothing (TimescaleDB's scheduler included) can attach to it again.
    await admin.query(`alter database ${TEMPLATE_DB} with is_template true allow_connections false`);
    // The scheduler TimescaleDB started when the extension was created still holds a connection.
    for (let i = 0; i < 50; i++) {
      const { rowCount } = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
        [TEMPLATE_DB],
      );
      if (rowCount === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${TEMPLATE_DB} still has connections`);
  } finally {
    await admin.end();
  }
}
