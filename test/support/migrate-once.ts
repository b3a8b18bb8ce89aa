// Child process for the concurrent-migration test: migrates the database at argv[2] and prints
// the versions it applied as JSON.
import pg from 'pg';
import { migrate } from '../../server/db/migrate.js';
import { createLogger } from '../../server/logger.js';

const pool = new pg.Pool({ connectionString: process.argv[2], max: 1 });
const result = await migrate(pool, createLogger('silent'));
await pool.end();
process.stdout.write(`${JSON.stringify(result.applied)}\n`);
