import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../server/config.js';
import { backup, DUMP_FILE } from '../server/recovery/backup.js';
import { restoreDump } from '../server/recovery/restore-target.js';

export interface BackupFigures {
  readonly events: number;
  readonly megabytes: number;
  readonly mbPerMillionEvents: number;
  readonly backupMs: number;
  readonly restoreMs: number;
  readonly restoredEvents: number;
  readonly statesChecked: number;
  readonly statesEqual: number;
}

/** A digest of the state at t: equal digests, equal states (every entity, every column). */
const STATE_DIGEST = `
  select count(*)::int as n,
         md5(coalesce(string_agg(source || '|' || table_schema || '.' || table_name || '|' || entity_id || '|' ||
                                 coalesce((last_event).after::text, ''), E'\\n'
                                 order by source, table_schema, table_name, entity_id), '')) as digest
    from msr.entity_states_at(to_timestamp($1 / 1000.0))`;

/**
 * The playbook's backup of the benchmark's database (npm run backup's code), its size, and the dump
 * restored into a scratch database beside it (npm run restore's code, which checks the event count
 * against backup.json), with the state at `times` compared between the two; the scratch is dropped.
 */
export async function backupFigures(
  pool: pg.Pool,
  databaseUrl: string,
  times: number[],
): Promise<BackupFigures> {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-bench-backup-'));
  const scratch = new URL(databaseUrl);
  scratch.pathname = '/msr_bench_restore';
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  try {
    const t0 = performance.now();
    const metadata = await backup(
      pool,
      databaseUrl,
      loadConfig({ DATABASE_URL: databaseUrl, AUTH_MODE: 'none' }),
      dir,
    );
    const t1 = performance.now();
    const restoredEvents = await restoreDump(scratch.toString(), path.join(dir, DUMP_FILE), metadata);
    const t2 = performance.now();
    const restored = new pg.Pool({ connectionString: scratch.toString(), max: 1 });
    let statesEqual = 0;
    try {
      for (const t of times) {
        const [a, b] = await Promise.all([pool.query(STATE_DIGEST, [t]), restored.query(STATE_DIGEST, [t])]);
        if (a.rows[0].n > 0 && a.rows[0].digest === b.rows[0].digest) statesEqual++;
      }
    } finally {
      await restored.end();
    }
    const megabytes = metadata.dumpBytes / 1e6;
    return {
      events: metadata.events,
      megabytes: Math.round(megabytes * 10) / 10,
      mbPerMillionEvents: Math.round((megabytes / (metadata.events / 1e6)) * 10) / 10,
      backupMs: Math.round(t1 - t0),
      restoreMs: Math.round(t2 - t1),
      restoredEvents,
      statesChecked: times.length,
      statesEqual,
    };
  } finally {
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query('drop database if exists msr_bench_restore with (force)');
    await client.end();
    await rm(dir, { recursive: true, force: true });
  }
}
