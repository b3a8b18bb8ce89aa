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
    if (options.migrated === false) await admin.query(`create database ${name}`);
    else await copyTemplate(admin, name);
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
        // A capture test's replication slots would keep the database from being dropped.
        await client.query(
          `select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active`,
          [name],
        );
        await client.query(
          `select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1`,
          [name],
        );
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * Copies the template. PostgreSQL refuses while any backend is attached to the template (SQLSTATE
 * 55006) and waits only 5 s for it to leave; on the TimescaleDB server a scheduler the launcher
 * starts there (it exits on its own, templates are refused) was once seen in the way, so such a
 * straggler is ended and the copy tried again, saying who it was if it never clears.
 */
async function copyTemplate(admin: pg.Client, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.query(`create database ${name} template ${TEMPLATE_DB}`);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== '55006' || attempt === 5) throw error;
      const { rows } = await admin.query<{ who: string }>(
        `select pg_terminate_backend(pid), backend_type || ' ' || application_name as who
           from pg_stat_activity where datname = $1`,
        [TEMPLATE_DB],
      );
      console.warn(
        `${TEMPLATE_DB} was in use by ${rows.map((r) => r.who).join(', ') || 'nobody any more'}; retrying`,
      );
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
