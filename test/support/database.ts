import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Dialect } from '../../server/db/dialect.js';
import { TEMPLATE_DB } from './template.js';

export const dialect: Dialect = process.env.MSR_TEST_DIALECT === 'timescaledb' ? 'timescaledb' : 'postgres';

export const poolSize = 4;

/**
 * The run's clock is moved by libfaketime (`faketime -f '+30d' npx vitest run`, the check that no
 * test depends on the date). PostgreSQL's own timers (lock_timeout, statement_timeout) never fire
 * under libfaketime 0.9.10, so the few tests that need one to fire skip themselves then.
 */
export const clockFaked = /faketime/.test(process.env.LD_PRELOAD ?? '');

export interface TestDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file, on the run's server of the project's dialect: a copy
 * of the migrated template (migrated: true) or an empty database.
 */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
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
