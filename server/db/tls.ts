import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';

/**
 * TLS to PostgreSQL, in libpq's terms: a database URL carries it as libpq does (`sslmode`,
 * `sslrootcert`, `sslcert`, `sslkey` in its query), so the one URL reaches every connection the
 * same way: node-postgres pools and clients through pgClientConfig, pg_dump and pg_restore through
 * libpqTlsEnvironment. node-postgres reads those parameters with meanings of its own (`require`
 * verifies the certificate, `prefer` too); they are taken out of the URL it sees and given to it
 * as explicit options with libpq's meanings.
 */
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface DatabaseTls {
  readonly mode: SslMode;
  /** CA certificates (PEM) the server's certificate must chain to (verify-ca, verify-full). */
  readonly caFile?: string;
  /** Client certificate and key (PEM), for servers that ask for one. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

const PARAMETERS = {
  sslmode: 'mode',
  sslrootcert: 'caFile',
  sslcert: 'certFile',
  sslkey: 'keyFile',
} as const;

/** A URL's TLS settings and problems with them, in words naming the parameter; undefined: none given. */
export function urlTls(url: string): { tls: DatabaseTls | undefined; problems: string[] } {
  const query = new URL(url).searchParams;
  const problems: string[] = [];
  const mode = query.get('sslmode');
  if (mode !== null && !(SSL_MODES as readonly string[]).includes(mode)) {
    problems.push(`sslmode=${mode} is not supported: use ${SSL_MODES.join(', ')}`);
  }
  const given = Object.keys(PARAMETERS).some((p) => query.has(p));
  if (!given) return { tls: undefined, problems };
  const tls: DatabaseTls = {
    // libpq: with a root certificate and no mode, verify-full is not implied; require is its floor.
    mode: (mode as SslMode | null) ?? 'require',
    ...(query.get('sslrootcert') ? { caFile: query.get('sslrootcert')! } : {}),
    ...(query.get('sslcert') ? { certFile: query.get('sslcert')! } : {}),
    ...(query.get('sslkey') ? { keyFile: query.get('sslkey')! } : {}),
  };
  return { tls, problems: [...problems, ...tlsProblems(tls)] };
}

/** What is wrong with TLS settings: files that cannot be read, a certificate without its key. */
export function tlsProblems(tls: DatabaseTls): string[] {
  const problems: string[] = [];
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    problems.push('a client certificate needs its key, and a key its certificate');
  }
  if (tls.mode === 'disable' && (tls.caFile || tls.certFile)) {
    problems.push('certificate files given with sslmode disable');
  }
  for (const file of [tls.caFile, tls.certFile, tls.keyFile]) {
    const problem = file === undefined ? undefined : unreadable(file);
    if (problem) problems.push(problem);
  }
  return problems;
}

/** Why a settings file cannot be read (undefined: it can). */
export function unreadable(file: string): string | undefined {
  try {
    readFileSync(file);
    return undefined;
  } catch (err) {
    return `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
}

/** `url` with `tls` written into its query, replacing any TLS parameters it had. */
export function withTls(url: string, tls: DatabaseTls): string {
  const parsed = new URL(url);
  for (const p of Object.keys(PARAMETERS)) parsed.searchParams.delete(p);
  parsed.searchParams.set('sslmode', tls.mode);
  if (tls.caFile) parsed.searchParams.set('sslrootcert', tls.caFile);
  if (tls.certFile) parsed.searchParams.set('sslcert', tls.certFile);
  if (tls.keyFile) parsed.searchParams.set('sslkey', tls.keyFile);
  return parsed.toString();
}

function withoutTls(url: string): string {
  const parsed = new URL(url);
  if (!Object.keys(PARAMETERS).some((p) => parsed.searchParams.has(p))) return url;
  for (const p of Object.keys(PARAMETERS)) parsed.searchParams.delete(p);
  return parsed.toString();
}

/** node-postgres's options for a database URL: libpq's TLS meanings, certificates read now. */
export function pgClientConfig(url: string): pg.ClientConfig {
  const { tls } = urlTls(url);
  return { connectionString: withoutTls(url), ssl: tls ? nodeTls(tls) : false };
}

function nodeTls(tls: DatabaseTls): ConnectionOptions | false {
  if (tls.mode === 'disable') return false;
  const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file, 'utf8'));
  const files = {
    ...(tls.caFile ? { ca: read(tls.caFile) } : {}),
    ...(tls.certFile ? { cert: read(tls.certFile), key: read(tls.keyFile) } : {}),
  };
  // libpq's require checks nothing, unless a root certificate is given: then it is verify-ca.
  if (tls.mode === 'require' && !tls.caFile) return { ...files, rejectUnauthorized: false };
  if (tls.mode === 'verify-full') return { ...files, rejectUnauthorized: true };
  return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
}

/** libpq's environment for the TLS of a database URL (pg_dump, pg_restore). */
export function libpqTlsEnvironment(url: string): Record<string, string> {
  const { tls } = urlTls(url);
  if (!tls) return {};
  return Object.fromEntries(
    Object.entries({
      PGSSLMODE: tls.mode,
      PGSSLROOTCERT: tls.caFile,
      PGSSLCERT: tls.certFile,
      PGSSLKEY: tls.keyFile,
    }).filter((e): e is [string, string] => e[1] !== undefined),
  );
}
