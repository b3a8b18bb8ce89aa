import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedDatabase } from '../../server/db/embedded.js';
import { migrate } from '../../server/db/migrate.js';
import { createLogger } from '../../server/logger.js';
import { TEMPLATE_DB } from './database.js';

/** One embedded PostgreSQL 15 for the whole run, with a migrated template database. */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-test-'));
  const log = createLogger('warn');
  const db = await startEmbeddedDatabase(dir, 0, log);
  const adminUrl = db.url.replace(/\/msr$/, '/postgres');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${TEMPLATE_DB}`);
  await admin.query(`create database ${TEMPLATE_DB}`);
  await admin.end();
  const pool = new pg.Pool({ connectionString: adminUrl.replace(/\/postgres$/, `/${TEMPLATE_DB}`), max: 2 });
  await migrate(pool, log);
  await pool.end();

  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgDataDir', dir);
  return async () => {
    await db.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgDataDir: string;
  }
}
