import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate authority made for one test run with openssl: its certificate signs servers'. */
export interface CertificateAuthority {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface ServerCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** The key and certificate chain as a PKCS#12 keystore (Java servers), under `password`. */
  readonly pkcs12File: string;
  readonly password: string;
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args);
}

export async function makeAuthority(dir: string, name: string): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true });
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile };
}

/**
 * A server (or client) certificate signed by `ca` for the given subject alternative names
 * (`DNS:localhost`, `IP:127.0.0.1`); valid from now for two days, whatever the date.
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  dir: string,
  name: string,
  altNames: string[],
): Promise<ServerCertificate> {
  const keyFile = path.join(dir, `${name}.key`);
  const csrFile = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}.crt`);
  const extFile = path.join(dir, `${name}.ext`);
  const pkcs12File = path.join(dir, `${name}.p12`);
  const password = `${name}-keystore`;
  await openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    keyFile,
    '-out',
    csrFile,
  ]);
  await writeFile(
    extFile,
    [`subjectAltName=${altNames.join(',')}`, 'extendedKeyUsage=serverAuth,clientAuth', ''].join('\n'),
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    extFile,
    '-out',
    certFile,
  ]);
  await openssl([
    'pkcs12',
    '-export',
    '-in',
    certFile,
    '-inkey',
    keyFile,
    '-certfile',
    ca.certFile,
    '-name',
    name,
    '-out',
    pkcs12File,
    '-passout',
    `pass:${password}`,
  ]);
  return { certFile, keyFile, pkcs12File, password };
}
