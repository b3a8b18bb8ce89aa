import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { createTemplate } from './template.js';
import { startTimescaleServer } from '../../scripts/services/timescaledb-server.js';

/**
 * One real TimescaleDB 2.22.1 server (Debian's PostgreSQL 15, built by scripts/ensure-timescaledb.sh)
 * for the whole run, background workers on, with a migrated template database.
 */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-tsdb-'));
  const server = await startTimescaleServer(dir);
  await createTemplate(server.adminUrl);
  project.provide('pgAdminUrl', server.adminUrl);
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
