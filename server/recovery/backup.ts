import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Pool } from 'pg';
import { z } from 'zod';
import type { Config } from '../config.js';
import { kafkaClient } from '../ingest/kafka-client.js';
import { ingestTopics } from '../ingest/topics.js';
import { runPgTool } from './pg-tools.js';

export const DUMP_FILE = 'msr.dump';
export const METADATA_FILE = 'backup.json';

const PartitionOffsetSchema = z.object({
  topic: z.string(),
  partition: z.number().int(),
  offset: z.string(),
});
export type PartitionOffset = z.infer<typeof PartitionOffsetSchema>;

/** What a backup records besides the dump, in backup.json. */
const BackupMetadataSchema = z.object({
  backupTime: z.string(),
  dialect: z.enum(['postgres', 'timescaledb']),
  /** The timescaledb extension's version in the dumped database (TimescaleDB dialect), else null. */
  timescaledbVersion: z.string().nullable(),
  schemaVersion: z.number().int(),
  /** Counted in the snapshot the dump was taken from: exactly what the dump holds. */
  events: z.number().int().nonnegative(),
  earliest: z.string().nullable(),
  latest: z.string().nullable(),
  dumpBytes: z.number().int().nonnegative(),
  /** The ingest group's committed offsets, read before the dump: replaying from them loses nothing. */
  kafka: z.object({ groupId: z.string(), offsets: z.array(PartitionOffsetSchema) }).nullable(),
});
export type BackupMetadata = z.infer<typeof BackupMetadataSchema>;

/** Reads a backup folder's backup.json; a missing or foreign file is a clear error. */
export async function readBackupMetadata(dir: string): Promise<BackupMetadata> {
  const file = path.join(dir, METADATA_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = BackupMetadataSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${file} is not an MSR backup's metadata: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * The playbook's backup: the ingest group's committed offsets first, then a `pg_dump -Fc` of the
 * whole database (TimescaleDB's documented procedure: a hypertable's rows live in chunks outside
 * the msr schema, and its continuous aggregate in a materialized hypertable), then backup.json.
 * The counts come from an exported snapshot that pg_dump reads too, so they describe exactly what
 * the dump holds. Offsets taken before the dump can only point at or before what the dump holds,
 * so a standard recovery that replays from them re-reads (idempotently) rather than skips events.
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
  const client = await pool.connect();
  try {
    await client.query('begin isolation level repeatable read read only');
    const { rows } = await client.query<{
      snapshot: string;
      dialect: string;
      timescaledb: string | null;
      version: number;
      events: number;
      earliest: Date | null;
      latest: Date | null;
    }>(`
      select pg_export_snapshot() as snapshot,
             (select dialect from msr.schema_migration order by version desc limit 1) as dialect,
             (select extversion from pg_extension where extname = 'timescaledb') as timescaledb,
             (select max(version) from msr.schema_migration) as version,
             (select count(*)::int from msr.cdc_event) as events,
             (select min(event_timestamp) from msr.cdc_event) as earliest,
             (select max(event_timestamp) from msr.cdc_event) as latest`);
    const row = rows[0]!;
    const file = path.join(dir, DUMP_FILE);
    await runPgTool(
      'pg_dump',
      ['--format=custom', '--no-owner', `--snapshot=${row.snapshot}`, `--file=${file}`],
      databaseUrl,
    );
    await client.query('commit');
    const metadata: BackupMetadata = {
      backupTime,
      dialect: row.dialect as BackupMetadata['dialect'],
      timescaledbVersion: row.timescaledb,
      schemaVersion: row.version,
      events: row.events,
      earliest: row.earliest?.toISOString() ?? null,
      latest: row.latest?.toISOString() ?? null,
      dumpBytes: (await stat(file)).size,
      kafka,
    };
    await writeFile(path.join(dir, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
    return metadata;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** The ingest cluster's client, for its group's committed offsets. */
export function offsetsClient(config: Config): Kafka {
  return kafkaClient({ ...config.kafka, brokers: config.kafka.brokers! });
}

async function committedOffsets(config: Config): Promise<BackupMetadata['kafka']> {
  const admin = offsetsClient(config).admin();
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
