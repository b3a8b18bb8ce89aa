import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadMigrations, migrate, MigrationError } from '../../../server/db/migrate.js';
import { createLogger } from '../../../server/logger.js';
import { createTestDatabase, dialect, type TestDatabase } from '../../support/database.js';

const log = createLogger('silent');
const run = promisify(execFile);

const RELATIONS = [
  'cdc_event',
  'configuration',
  'session',
  'snapshot_pointer',
  'entity_last_states',
  'earliest_snapshot_a',
  'earliest_snapshot_b',
];

describe('migrations', () => {
  let db: TestDatabase | undefined;
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  it(`apply on an empty database in the ${dialect} dialect and create the seven relations`, async () => {
    db = await createTestDatabase({ migrated: false });
    const result = await migrate(db.pool, log);
    expect(result.dialect).toBe(dialect);
    const files = await loadMigrations(dialect);
    expect(result.applied).toEqual(files.map((f) => f.version));
    const { rows } = await db.pool.query<{ relname: string }>(
      `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'msr' and c.relname = any($1)`,
      [RELATIONS],
    );
    expect(rows.map((r) => r.relname).sort()).toEqual([...RELATIONS].sort());
    const recorded = await db.pool.query(
      `select version, dialect from msr.schema_migration order by version`,
    );
    expect(recorded.rows).toEqual(files.map((f) => ({ version: f.version, dialect })));
    const config = await db.pool.query(`select key from msr.configuration order by key`);
    expect(config.rows.map((r) => r.key)).toEqual(
      expect.arrayContaining(['DATA_RETENTION_CRON_EXPRESSION', 'MAX_ACTIVE_SESSIONS', 'MAX_PLAYBACK_RANGE']),
    );
  });

  it('run twice, the second run applies nothing', async () => {
    db = await createTestDatabase({ migrated: false });
    await migrate(db.pool, log);
    const again = await migrate(db.pool, log);
    expect(again.applied).toEqual([]);
  });

  it('refuse a database whose schema is newer than the code', async () => {
    db = await createTestDatabase();
    await db.pool.query(
      `insert into msr.schema_migration (version, name, dialect, checksum) values (999, 'from_the_future', $1, 'x')`,
      [dialect],
    );
    const error = await migrate(db.pool, log).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).code).toBe('SCHEMA_AHEAD');
    expect((error as Error).message).toMatch(/999 \(from_the_future\)/);
  });

  it('refuse a migration that was edited after it was applied', async () => {
    db = await createTestDatabase();
    await db.pool.query(`update msr.schema_migration set checksum = 'edited' where version = 2`);
    const error = (await migrate(db.pool, log).catch((e: unknown) => e)) as MigrationError;
    expect(error.code).toBe('MIGRATION_CHANGED');
  });

  it('are safe when two server processes migrate one database at once', async () => {
    db = await createTestDatabase({ migrated: false });
    const script = new URL('../../support/migrate-once.ts', import.meta.url).pathname;
    const tsx = new URL('../../../node_modules/.bin/tsx', import.meta.url).pathname;
    const results = await Promise.all([1, 2].map(() => run(tsx, [script, db!.url])));
    const applied = results.map((r) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as number[]);
    const files = await loadMigrations(dialect);
    // Exactly one process applied everything; the other found it done.
    expect(applied.map((a) => a.length).sort()).toEqual([0, files.length]);
    const { rows } = await db.pool.query(`select count(*)::int as n from msr.schema_migration`);
    expect(rows[0].n).toBe(files.length);
  });
});
