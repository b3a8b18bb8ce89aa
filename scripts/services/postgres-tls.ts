import { chmod, chown, stat } from 'node:fs/promises';
import type pg from 'pg';
import { issueCertificate, type CertificateAuthority } from './certificates.js';
import { until } from './until.js';

const SETTINGS = ['ssl', 'ssl_cert_file', 'ssl_key_file'];

/**
 * Makes the PostgreSQL server that `admin` is connected to speak TLS, with a certificate for
 * `localhost` signed by `ca` (written into `dir`), and waits until it does. Other settings written
 * before (pg_hba.conf) are reloaded with it.
 */
export async function serveTls(admin: pg.Client, ca: CertificateAuthority, dir: string): Promise<void> {
  const server = await issueCertificate(ca, dir, 'pg-server', ['DNS:localhost']);
  const { rows } = await admin.query<{ data_directory: string }>('show data_directory');
  // The server runs as its data directory's owner and refuses a key others can read.
  const owner = await stat(rows[0]!.data_directory);
  await chmod(dir, 0o755);
  await chmod(server.certFile, 0o644);
  await chown(server.keyFile, owner.uid, owner.gid);
  await chmod(server.keyFile, 0o600);
  await admin.query(`alter system set ssl_cert_file = '${server.certFile}'`);
  await admin.query(`alter system set ssl_key_file = '${server.keyFile}'`);
  await admin.query('alter system set ssl = on');
  await admin.query('select pg_reload_conf()');
  await until('the server speaks TLS', async () => (await admin.query('show ssl')).rows[0].ssl === 'on');
}

/** Puts the server's TLS settings back as they were before serveTls. */
export async function stopServingTls(admin: pg.Client): Promise<void> {
  for (const setting of SETTINGS) await admin.query(`alter system reset ${setting}`);
  await admin.query('select pg_reload_conf()');
}
