import { describe, expect, it } from 'vitest';
import { libpqEnvironment, runPgTool } from '../../server/recovery/pg-tools.js';

describe('PostgreSQL client programs', () => {
  it('get the connection through libpq environment variables, never the command line', () => {
    expect(libpqEnvironment('postgres://msr:p%40ss@db.example:6543/replay?sslmode=verify-full')).toEqual({
      PGHOST: 'db.example',
      PGPORT: '6543',
      PGUSER: 'msr',
      PGPASSWORD: 'p@ss',
      PGDATABASE: 'replay',
      PGSSLMODE: 'verify-full',
    });
  });

  it('fail with a message that names the database but not its password', async () => {
    // Nothing listens on port 1: pg_dump fails to connect.
    const failure = await runPgTool(
      'pg_dump',
      ['--schema-only'],
      'postgres://msr:s3cret@127.0.0.1:1/msr',
    ).then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );
    expect(failure?.code).toBe('PG_TOOL_FAILED');
    expect(failure?.message).toContain('pg_dump failed on postgres://msr:***@127.0.0.1:1/msr');
    expect(failure?.message).not.toContain('s3cret');
  });
});
