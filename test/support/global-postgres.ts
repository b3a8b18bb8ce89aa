import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedDatabase } from '../../server/db/embedded.js';
import { createLogger } from '../../server/logger.js';
import { createTemplate } from './template.js';

/** One embedded PostgreSQL 15 for the whole run, with a migrated template database. */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-test-'));
  const db = await startEmbeddedDatabase(dir, 0, createLogger('warn'));
  const adminUrl = db.url.replace(/\/msr$/, '/postgres');
  await createTemplate(adminUrl);
  project.provide('pgAdminUrl', adminUrl);
  return async () => {
    await db.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}
