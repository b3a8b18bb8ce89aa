import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Pool } from 'pg';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../logger.js';
import { backup, DUMP_FILE, readBackupMetadata } from '../recovery/backup.js';
import { checkBackup } from '../recovery/restore-target.js';
import { restore } from '../recovery/restore.js';
import { verify, type VerifyCheck } from '../recovery/verify.js';

// The playbook as commands, on the database of DATABASE_URL (stop MSR servers before a restore):
//   npm run backup  -- --dir backups/<day>          pg_dump of the whole database + backup.json
//   npm run restore -- --dir backups/<day> [--cold] standard recovery (or cold: restore only)
//   npm run verify  [-- --dir backups/<day>]        the post-recovery validation; with --dir, also the
//                                                   backup against its own backup.json
// Each prints one JSON document and exits 0, or 1 when it failed (verify: a check failed).

const usage =
  'usage: npm run backup|restore -- --dir <folder> [--cold]   |   npm run verify [-- --dir <folder>]';
const command = process.argv[2];
let config: Config;
try {
  config = loadConfig({ AUTH_MODE: 'none', ...process.env });
} catch (err) {
  process.stderr.write(`${(err as ConfigError).message}\n`);
  process.exit(2);
}
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { dir: { type: 'string' }, cold: { type: 'boolean', default: false } },
});
const databaseUrl = config.databaseUrl;
if (!databaseUrl) {
  process.stderr.write('DATABASE_URL is not set: the database to back up, restore or verify\n');
  process.exit(2);
}
if (command !== 'verify' && !values.dir) {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const dir = values.dir;
const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { toStderr: true });
/** The restore drops and makes the database anew, so it opens its own connections afterwards. */
const onPool = async <T>(work: (pool: Pool) => Promise<T>): Promise<T> => {
  const pool = createPool(databaseUrl, 4, log);
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
};
let ok = false;
try {
  if (command === 'backup') {
    const result = await onPool((pool) => backup(pool, databaseUrl, config, dir!));
    ok = true;
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else if (command === 'restore') {
    const result = await restore(databaseUrl, config, dir!, values.cold ? 'cold' : 'standard', log);
    ok = result.verify.ok;
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const report = await onPool((pool) => verify(pool));
    const checks = [...report.checks];
    if (dir) checks.push(await backupCheck(databaseUrl, dir));
    ok = checks.every((c) => c.ok);
    process.stdout.write(`${JSON.stringify({ ...report, ok, checks }, null, 2)}\n`);
  }
} catch (err) {
  const code = (err as { code?: unknown }).code;
  process.stderr.write(
    `${command} failed${typeof code === 'string' ? ` (${code})` : ''}: ${(err as Error).message}\n`,
  );
}
process.exit(ok ? 0 : 1);

/** The backup in `dir` restored into a scratch database and compared with its backup.json. */
async function backupCheck(url: string, folder: string): Promise<VerifyCheck> {
  try {
    const metadata = await readBackupMetadata(folder);
    const events = await checkBackup(url, path.join(folder, DUMP_FILE), metadata);
    return {
      name: 'backup',
      ok: true,
      detail: `${folder}: the dump holds the ${events} events backup.json counts`,
    };
  } catch (err) {
    return { name: 'backup', ok: false, detail: `${folder}: ${(err as Error).message}` };
  }
}
