import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../logger.js';
import { backup } from '../maintenance/backup.js';
import { restore } from '../maintenance/restore.js';
import { verify } from '../maintenance/verify.js';

// The playbook as commands, on the database of DATABASE_URL (stop MSR servers before a restore):
//   npm run backup  -- --dir backups/2026-11-24          pg_dump of the msr schema + backup.json
//   npm run restore -- --dir backups/2026-11-24 [--cold] standard recovery (or cold: restore only)
//   npm run verify                                        the post-recovery validation
// Each prints one JSON document and exits 0, or 1 when it failed (verify: a check failed).

const usage = 'usage: npm run backup|restore -- --dir <folder> [--cold]   |   npm run verify';
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
if (!config.databaseUrl) {
  process.stderr.write('DATABASE_URL is not set: the database to back up, restore or verify\n');
  process.exit(2);
}
if (command !== 'verify' && !values.dir) {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
const pool = createPool(config.databaseUrl, 4, log);
let ok = false;
try {
  const result =
    command === 'backup'
      ? await backup(pool, config.databaseUrl, config, values.dir!)
      : command === 'restore'
        ? await restore(pool, config.databaseUrl, config, values.dir!, values.cold ? 'cold' : 'standard', log)
        : await verify(pool);
  ok = !('ok' in result) || result.ok;
  if ('verify' in result) ok = result.verify.ok;
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} catch (err) {
  process.stderr.write(`${command} failed: ${(err as Error).message}\n`);
} finally {
  await pool.end();
}
process.exit(ok ? 0 : 1);
