import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Dialect } from '../../server/db/dialect.js';

export const TEMPLATE_DB = 'msr_template';

export const dialect: Dialect = process.env.MSR_TEST_DIALECT === 'timescaledb' ? 'timescaledb' : 'postgres';

/** PGlite serves one connection at a time; plain PostgreSQL takes a real pool. */
export const poolSize = dialect === 'timescaledb' ? 1 : 4;

export interface TestDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file. Plain PostgreSQL: a copy of the migrated template
 * (migrated: true) or an empty database. TimescaleDB: the one PGlite database with the msr schema
 * dropped, migrated again when asked.
 */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  if (dialect === 'timescaledb') {
    const pool = new RetryingPool({ connectionString: adminUrl, max: 1 });
    await pool.query('drop schema if exists msr cascade');
    await pool.query('drop schema if exists msr_demo cascade');
    if (options.migrated !== false) {
      const { migrate } = await import('../../server/db/migrate.js');
      const { createLogger } = await import('../../server/logger.js');
      await migrate(pool, createLogger('warn'));
    }
    return { url: adminUrl, pool, drop: () => pool.end() };
  }
  const name = `msr_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(
      options.migrated === false
        ? `create database ${name}`
        : `create database ${name} template ${TEMPLATE_DB}`,
    );
  } finally {
    await admin.end();
  }
  const url = adminUrl.replace(/\/postgres$/, `/${name}`);
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // As in server/db/pool.ts: a dropped connection (tests that stop the database) is not a crash.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return {
    url,
    pool,
    drop: async () => {
      await pool.end();
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * pglite-socket 0.0.22 (the TimescaleDB test server) sometimes drops the first query on a
 * connection opened right after another connection saw an error or closed. The test pool retries
 * such a query once, on a fresh connection; errors the database itself reports pass through.
 */
class RetryingPool extends pg.Pool {
  /** A fresh connection is probed once, so code that takes a client (migrate) gets a working one. */
  override connect(...args: unknown[]): never {
    if (args.length > 0) return (super.connect as (...a: unknown[]) => never).apply(this, args);
    const transient = (err: unknown) => /Connection terminated|ECONNRESET/.test((err as Error).message);
    const take = async (attempt: number): Promise<pg.PoolClient> => {
      let client: pg.PoolClient;
      try {
        client = await (super.connect as () => Promise<pg.PoolClient>).call(this);
      } catch (err) {
        if (attempt > 2 || !transient(err)) throw err;
        await new Promise((r) => setTimeout(r, 50));
        return take(attempt + 1);
      }
      try {
        await client.query('select 1');
        return client;
      } catch (err) {
        client.release(err as Error);
        if (attempt > 2 || !transient(err)) throw err;
        return take(attempt + 1);
      }
    };
    return take(0) as never;
  }

  override query(...args: unknown[]): never {
    const once = () => (super.query as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    return once().catch((err: Error) => {
      if (/Connection terminated|ECONNRESET/.test(err.message)) return once();
      throw err;
    }) as never;
  }
}
