import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Ingest } from '../ingest/consumer.js';
import { Metrics } from '../metrics.js';
import { createPool } from '../db/pool.js';
import {
  DUMP_FILE,
  offsetsClient,
  readBackupMetadata,
  type BackupMetadata,
  type PartitionOffset,
} from './backup.js';
import { checkRestoreTarget, restoreDump } from './restore-target.js';
import { verify, type VerifyReport } from './verify.js';
import { REFRESH_AGGREGATE } from '../db/sql-fragments.js';

export type RecoveryMode = 'standard' | 'cold';

export interface RecoveryResult {
  readonly mode: RecoveryMode;
  readonly backup: BackupMetadata;
  readonly restoredEvents: number;
  readonly replayedEvents: number;
  readonly ms: {
    readonly restore: number;
    readonly replay: number;
    readonly rebuild: number;
    readonly total: number;
  };
  readonly verify: VerifyReport;
}

/**
 * The playbook's recovery into DATABASE_URL's database, made anew: refused before any change when
 * the server or database cannot take the backup, then the dump restored (TimescaleDB's pre/post
 * restore procedure on that dialect) and checked against backup.json. Cold stops there. Standard
 * then resets the ingest group's offsets to the backup's, runs the ingest here until it has caught
 * up with Kafka (everything after the backup comes back; what the dump already had is a no-op),
 * refreshes the aggregate and rebuilds the earliest snapshot, then verifies. MSR servers on this
 * database and group must be stopped meanwhile (Kafka only resets the offsets of a group without
 * members).
 */
export async function restore(
  databaseUrl: string,
  config: Config,
  dir: string,
  mode: RecoveryMode,
  log: Logger,
): Promise<RecoveryResult> {
  const started = performance.now();
  const backup = await readBackupMetadata(dir);
  await checkRestoreTarget(databaseUrl, backup);
  const restoredEvents = await restoreDump(databaseUrl, path.join(dir, DUMP_FILE), backup);
  const pool = createPool(databaseUrl, 4, log);
  try {
    await pool.query('select msr.ensure_public_entry_points()');
    const restoredAt = performance.now();
    let replayedAt = restoredAt;
    if (mode === 'standard') {
      if (backup.kafka && config.kafka.brokers) {
        await resetOffsets(config, backup.kafka.offsets);
        await catchUp(pool, config, log);
      }
      replayedAt = performance.now();
      await pool.query(REFRESH_AGGREGATE);
      await pool.query('select msr.refresh_earliest_snapshot()');
    }
    const rebuiltAt = performance.now();
    const report = await verify(pool);
    return {
      mode,
      backup,
      restoredEvents,
      replayedEvents: report.events - restoredEvents,
      ms: {
        restore: Math.round(restoredAt - started),
        replay: Math.round(replayedAt - restoredAt),
        rebuild: Math.round(rebuiltAt - replayedAt),
        total: Math.round(rebuiltAt - started),
      },
      verify: report,
    };
  } finally {
    await pool.end();
  }
}

async function resetOffsets(config: Config, offsets: readonly PartitionOffset[]) {
  const admin = offsetsClient(config).admin();
  await admin.connect();
  try {
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const o of offsets) {
      // -1: nothing was committed at backup time; start from the beginning of the partition.
      const offset = BigInt(o.offset) < 0n ? await earliestOffset(admin, o.topic, o.partition) : o.offset;
      byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), { partition: o.partition, offset }]);
    }
    for (const [topic, partitions] of byTopic) {
      await admin.setOffsets({ groupId: config.kafka.groupId, topic, partitions });
    }
  } finally {
    await admin.disconnect();
  }
}

async function earliestOffset(
  admin: ReturnType<ReturnType<typeof offsetsClient>['admin']>,
  topic: string,
  partition: number,
) {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.find((p) => p.partition === partition)?.low ?? '0';
}

/** Runs the ingest until its group has no lag left on its topics. */
async function catchUp(pool: Pool, config: Config, log: Logger): Promise<void> {
  const ingest = new Ingest(pool, { ...config.kafka, brokers: config.kafka.brokers! }, log, new Metrics(), {
    lagPollMs: 500,
    topicRefreshMs: 2_000,
  });
  ingest.start();
  try {
    for (;;) {
      await sleep(500);
      const { state, lag, error } = ingest.status;
      if (state === 'failed') throw new Error(`ingest failed while replaying: ${error ?? 'unknown error'}`);
      if (state === 'consuming' && lag === 0) return;
    }
  } finally {
    await ingest.stop();
  }
}
