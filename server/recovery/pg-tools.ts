import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parse } from 'pg-connection-string';
import { redactSecrets } from '../db/redact.js';
import { libpqTlsEnvironment } from '../db/tls.js';

const run = promisify(execFile);

/** A PostgreSQL client program (pg_dump, pg_restore) failed; the message never holds a password. */
export class PgToolError extends Error {
  readonly code = 'PG_TOOL_FAILED';
}

/**
 * libpq's environment for a database URL: the connection reaches pg_dump and pg_restore through
 * PGHOST, PGPASSWORD and friends, never on their command line (visible to every process listing).
 */
export function libpqEnvironment(databaseUrl: string): Record<string, string> {
  const c = parse(databaseUrl);
  const env: Record<string, string | null | undefined> = {
    PGHOST: c.host,
    PGPORT: c.port,
    PGUSER: c.user,
    PGPASSWORD: c.password,
    PGDATABASE: c.database,
    // Set even when the URL says nothing: libpq's default (prefer) would differ from the pool's.
    PGSSLMODE: 'disable',
    ...libpqTlsEnvironment(databaseUrl),
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => Boolean(e[1])));
}

/** Runs a libpq program against the database of `databaseUrl`. */
export async function runPgTool(
  program: 'pg_dump' | 'pg_restore',
  args: readonly string[],
  databaseUrl: string,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(program, [...args], {
      env: { ...process.env, ...libpqEnvironment(databaseUrl) },
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { code?: string | number; stderr?: string };
    const why =
      e.code === 'ENOENT' ? `${program} is not installed (Debian: postgresql-client-15)` : e.stderr?.trim();
    const password = parse(databaseUrl).password;
    const message = redactSecrets(`${program} failed on ${databaseUrl}: ${why ?? String(err)}`);
    throw new PgToolError(password ? message.split(password).join('***') : message);
  }
}
