import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import type { Pool } from 'pg';
import type { Config } from '../config.js';
import { ingestTopics } from '../ingest/topics.js';

const run = promisify(execFile);

export const DUMP_FILE = 'msr.dump';
export const METADATA_FILE = 'backup.json';

export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** What a backup records besides the dump, in backup.json. */
export interface BackupMetadata {
  readonly backupTime: string;
  readonly dialect: string;
  readonly schemaVersion: number;
  readonly events: number;
  readonly earliest: string | null;
  readonly latest: string | null;
  /** The ingest group's committed offsets, read before the dump: replaying from them loses nothing. */
  readonly kafka: { readonly groupId: string; readonly offsets: readonly PartitionOffset[] } | null;
}

/**
 * The playbook's backup: the ingest group's committed offsets first, then `pg_dump -Fc` of the
 * msr schema, then backup.json. Offsets taken before the dump can only point at or before what the
 * dump holds, so a standard recovery that replays from them re-reads (idempotently) rather than
 * skips events.
 */
export async function backup(
  pool: Pool,
  databaseUrl: string,
  config: Config,
  dir: string,
): Promise<BackupMetadata> {
  await mkdir(dir, { recursive: true });
  const kafka = config.kafka.brokers ? await committedOffsets(config) : null;
  const backupTime = new Date().toISOString();
  await run(
    'pg_dump',
    ['--format=custom', '--schema=msr', '--no-owner', `--file=${path.join(dir, DUMP_FILE)}`, databaseUrl],
    {
      maxBuffer: 16 << 20,
    },
  );
  const { rows } = await pool.query<{
    dialect: string;
    version: number;
    events: number;
    earliest: Date | null;
    latest: Date | null;
  }>(`
    select (select dialect from msr.schema_migration order by version desc limit 1) as dialect,
           (select max(version) from msr.schema_migration) as version,
           (select count(*)::int from msr.cdc_event) as events,
           (select min(event_timestamp) from msr.cdc_event) as earliest,
           (select max(event_timestamp) from msr.cdc_event) as latest`);
  const row = rows[0]!;
  const metadata: BackupMetadata = {
    backupTime,
    dialect: row.dialect,
    schemaVersion: row.version,
    events: row.events,
    earliest: row.earliest?.toISOString() ?? null,
    latest: row.latest?.toISOString() ?? null,
    kafka,
  };
  await writeFile(path.join(dir, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
  return metadata;
}

export function kafkaClient(config: Config): Kafka {
  return new Kafka({
    clientId: config.kafka.clientId,
    brokers: [...config.kafka.brokers!],
    logLevel: logLevel.NOTHING,
  });
}

async function committedOffsets(config: Config): Promise<BackupMetadata['kafka']> {
  const admin = kafkaClient(config).admin();
  await admin.connect();
  try {
    // The ingest's own topics: kafkajs fetches none for an empty list.
    const names = ingestTopics(await admin.listTopics(), config.kafka);
    const topics = await admin.fetchOffsets({ groupId: config.kafka.groupId, topics: names });
    const offsets = topics.flatMap(({ topic, partitions }) =>
      partitions.map((p) => ({ topic, partition: p.partition, offset: p.offset })),
    );
    return { groupId: config.kafka.groupId, offsets };
  } finally {
    await admin.disconnect();
  }
}
