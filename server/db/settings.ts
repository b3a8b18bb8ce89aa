import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { REFRESH_AGGREGATE } from './sql-fragments.js';

/** Writes the effective settings into msr.configuration, where the SQL functions read them. */
export async function publishSettings(pool: Pool, config: Config): Promise<void> {
  const settings: [string, string][] = [
    ['MAX_PLAYBACK_RANGE', String(config.maxPlaybackRangeDays)],
    ['DATA_RETENTION_CRON_EXPRESSION', config.retentionCron],
    ['MAX_ACTIVE_SESSIONS', String(config.maxActiveSessions)],
    [
      'EARLIEST_VALID_TIMESTAMP',
      config.earliestValidTimestamp === undefined
        ? ''
        : new Date(config.earliestValidTimestamp).toISOString(),
    ],
  ];
  await pool.query(
    `insert into msr.configuration (key, value)
     select * from unnest($1::text[], $2::text[])
     on conflict (key) do update set value = excluded.value, updated_at = now()
     where msr.configuration.value is distinct from excluded.value`,
    [settings.map((s) => s[0]), settings.map((s) => s[1])],
  );
}

/** Makes sure every day of the playback window (and a week ahead) has its storage. */
export async function prepareStorage(pool: Pool, config: Config): Promise<void> {
  await pool.query(`select msr.prepare_storage(current_date - $1::int - 1, current_date + 7)`, [
    config.maxPlaybackRangeDays,
  ]);
}

/** Materializes entity_last_states; logs instead of throwing, since only keyframe speed depends on it. */
export async function refreshEntityLastStates(pool: Pool, log: Logger): Promise<void> {
  const started = Date.now();
  try {
    await pool.query(REFRESH_AGGREGATE);
    log.info({ ms: Date.now() - started }, 'entity_last_states refreshed');
  } catch (err) {
    log.warn({ err }, 'entity_last_states refresh failed');
  }
}
