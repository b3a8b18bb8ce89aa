import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';
import { connectionProblem, describeConnectionFailure } from '../../server/connection-failure.js';
import { libpqTlsEnvironment, pgClientConfig } from '../../server/db/tls.js';
import { libpqEnvironment } from '../../server/recovery/pg-tools.js';

const dir = mkdtempSync(path.join(tmpdir(), 'msr-tls-config-'));
const file = (name: string, content: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};
const ca = file('ca.crt', '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
const cert = file('client.crt', 'client certificate');
const key = file('client.key', 'client key');
const DB = { DATABASE_URL: 'postgres://msr:pw@db.example:5432/msr', AUTH_MODE: 'none' };

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('TLS and SASL configuration for Kafka', () => {
  it('is off by default: plaintext, no SASL', () => {
    const { kafka } = loadConfig({ KAFKA_BROKERS: 'k:9092' });
    expect(kafka.tls).toBeUndefined();
    expect(kafka.sasl).toBeUndefined();
  });

  it('reads the CA and client certificate files once and takes SASL credentials, from files too', () => {
    const { kafka } = loadConfig({
      KAFKA_BROKERS: 'k:9093',
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SSL_CERT_FILE: cert,
      KAFKA_SSL_KEY_FILE: key,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME_FILE: file('user', 'msr-ingest\n'),
      KAFKA_SASL_PASSWORD_FILE: file('password', 'p4ss word\n'),
    });
    expect(kafka.tls).toEqual({
      ca: expect.stringContaining('not checked here'),
      cert: 'client certificate',
      key: 'client key',
    });
    expect(kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'msr-ingest', password: 'p4ss word' });
  });

  it('names every incomplete or contradictory setting, never echoing the password', () => {
    const found = problems({
      KAFKA_SSL_CA_FILE: path.join(dir, 'missing.crt'),
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_PASSWORD: 'hunter2-secret',
      KAFKA_SASL_PASSWORD_FILE: file('password2', 'other'),
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'KAFKA_SASL_PASSWORD_FILE: give KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both',
      ]),
    );
    const second = problems({
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_PASSWORD: 'hunter2-secret',
    });
    expect(second).toEqual([
      'KAFKA_SSL_CA_FILE: given without KAFKA_SSL=true',
      'KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM',
    ]);
    expect(problems({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: path.join(dir, 'missing.crt') })).toEqual([
      `KAFKA_SSL_CA_FILE: cannot read ${path.join(dir, 'missing.crt')} (ENOENT)`,
    ]);
    const bad = problems({ KAFKA_SASL_MECHANISM: 'md5', KAFKA_SASL_PASSWORD: 'hunter2-secret' });
    expect(bad.join('\n')).toContain('KAFKA_SASL_MECHANISM');
    expect(bad.join('\n')).not.toContain('hunter2');
    expect(problems({ KAFKA_SASL_USERNAME_FILE: path.join(dir, 'nope') })).toEqual([
      `KAFKA_SASL_USERNAME_FILE: cannot read ${path.join(dir, 'nope')} (ENOENT)`,
    ]);
  });
});

describe('TLS configuration for PostgreSQL', () => {
  it('writes DATABASE_SSL_* into the URL in libpq form, so every connection made from it uses them', () => {
    const { databaseUrl } = loadConfig({ ...DB, DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: ca });
    const url = new URL(databaseUrl!);
    expect(url.searchParams.get('sslmode')).toBe('verify-full');
    expect(url.searchParams.get('sslrootcert')).toBe(ca);
    expect(libpqEnvironment(databaseUrl!)).toMatchObject({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca });
  });

  it('applies DATABASE_SSL_* to every replica URL too, and refuses replicas that are not PostgreSQL URLs or have no primary', () => {
    const { replicas } = loadConfig({
      ...DB,
      DATABASE_SSL_MODE: 'verify-full',
      DATABASE_SSL_CA_FILE: ca,
      DATABASE_REPLICA_URLS: 'postgres://msr:pw@replica-1:5432/msr, postgres://msr:pw@replica-2/msr',
      REPLICA_MAX_LAG_SECONDS: '12',
    });
    expect(replicas.maxLagMs).toBe(12_000);
    expect(replicas.urls.map((u) => [new URL(u).host, new URL(u).searchParams.get('sslmode')])).toEqual([
      ['replica-1:5432', 'verify-full'],
      ['replica-2', 'verify-full'],
    ]);
    expect(loadConfig(DB).replicas).toEqual({ urls: [], maxLagMs: 30_000 });
    expect(
      problems({
        ...DB,
        DATABASE_SSL_MODE: 'verify-full',
        DATABASE_SSL_CA_FILE: path.join(dir, 'none.crt'),
        DATABASE_REPLICA_URLS: 'postgres://r1/msr,postgres://r2/msr',
      }),
    ).toEqual([`DATABASE_SSL_MODE: cannot read ${path.join(dir, 'none.crt')} (ENOENT)`]);
    expect(problems({ ...DB, DATABASE_REPLICA_URLS: 'postgres://r1/msr,http://msr:secret@r2/msr' })).toEqual([
      'DATABASE_REPLICA_URLS (replica 2): expected a postgres:// or postgresql:// URL',
    ]);
    expect(problems({ AUTH_MODE: 'none', DATABASE_REPLICA_URLS: 'postgres://r1/msr' })).toEqual([
      'DATABASE_REPLICA_URLS: needs DATABASE_URL (the primary the replicas follow)',
    ]);
  });

  it('takes DATABASE_URL from a file, and refuses TLS given twice or incomplete', () => {
    expect(
      loadConfig({ AUTH_MODE: 'none', DATABASE_URL_FILE: file('url', `${DB.DATABASE_URL}\n`) }).databaseUrl,
    ).toBe(DB.DATABASE_URL);
    expect(
      problems({
        ...DB,
        DATABASE_URL: `${DB.DATABASE_URL}?sslmode=require`,
        DATABASE_SSL_MODE: 'verify-full',
      }),
    ).toEqual([
      'DATABASE_SSL_MODE: TLS is set in DATABASE_URL (sslmode and friends) too; give it in one place',
    ]);
    expect(problems({ ...DB, DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CERT_FILE: cert })).toEqual([
      'DATABASE_SSL_MODE: a client certificate needs its key, and a key its certificate',
    ]);
    expect(problems({ ...DB, DATABASE_URL: `${DB.DATABASE_URL}?sslmode=prefer` })).toEqual([
      'DATABASE_URL: sslmode=prefer is not supported: use disable, require, verify-ca, verify-full',
    ]);
    expect(
      problems({ ...DB, DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA_FILE: path.join(dir, 'none.crt') }),
    ).toEqual([`DATABASE_SSL_MODE: cannot read ${path.join(dir, 'none.crt')} (ENOENT)`]);
    expect(problems({ AUTH_MODE: 'none', CAPTURE_SOURCE_URL: 'postgres://c@src/db?sslmode=allow' })).toEqual([
      'CAPTURE_SOURCE_URL: sslmode=allow is not supported: use disable, require, verify-ca, verify-full',
    ]);
  });

  it('gives node-postgres libpq meanings: require checks nothing, verify-ca skips the host name, verify-full checks both', () => {
    const base = 'postgres://msr@db.example/msr';
    expect(pgClientConfig(base)).toEqual({ connectionString: base, ssl: false });
    expect(pgClientConfig(`${base}?sslmode=require`)).toEqual({
      connectionString: base,
      ssl: { rejectUnauthorized: false },
    });
    const verifyCa = pgClientConfig(`${base}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(ca)}`);
    expect(verifyCa.connectionString).toBe(base);
    expect(verifyCa.ssl).toMatchObject({
      rejectUnauthorized: true,
      ca: expect.stringContaining('not checked here'),
    });
    expect((verifyCa.ssl as { checkServerIdentity?: () => unknown }).checkServerIdentity?.()).toBeUndefined();
    // require with a root certificate is verify-ca, as in libpq.
    expect(
      pgClientConfig(`${base}?sslmode=require&sslrootcert=${encodeURIComponent(ca)}`).ssl,
    ).toHaveProperty('checkServerIdentity');
    const full = pgClientConfig(
      `${base}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}&sslcert=${cert}&sslkey=${key}`,
    );
    expect(full.ssl).toEqual({
      rejectUnauthorized: true,
      ca: expect.stringContaining('not checked here'),
      cert: 'client certificate',
      key: 'client key',
    });
    expect(libpqTlsEnvironment(base)).toEqual({});
    expect(libpqEnvironment(base)).toMatchObject({ PGSSLMODE: 'disable' });
  });
});

describe('connection failures in words', () => {
  it('names the TLS or authentication problem ahead of the library detail', () => {
    const tlsError = (code: string, message: string) => Object.assign(new Error(message), { code });
    expect(
      describeConnectionFailure(
        tlsError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      ),
    ).toBe('certificate not trusted (self-signed certificate in certificate chain)');
    const kafkaWrapped = Object.assign(
      new Error('Connection error: unable to verify the first certificate'),
      {
        name: 'KafkaJSConnectionError',
        originalError: tlsError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      },
    );
    expect(connectionProblem(kafkaWrapped)).toBe('certificate not trusted');
    expect(
      connectionProblem(
        tlsError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
      ),
    ).toBe('certificate is for another host name');
    const sasl = Object.assign(new Error('SASL SCRAM SHA512 authentication failed: Authentication failed'), {
      name: 'KafkaJSSASLAuthenticationError',
    });
    expect(describeConnectionFailure(sasl)).toBe(
      'SASL authentication failed (SASL SCRAM SHA512 authentication failed: Authentication failed)',
    );
    expect(connectionProblem(new Error('The server does not support SSL connections'))).toBe(
      'the server does not accept TLS',
    );
    expect(
      connectionProblem(
        tlsError(
          'ECONNRESET',
          'Client network socket disconnected before secure TLS connection was established',
        ),
      ),
    ).toBe('TLS handshake failed: is the port a TLS listener?');
    expect(describeConnectionFailure(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBe(
      'connect ECONNREFUSED 127.0.0.1:1',
    );
  });
});
