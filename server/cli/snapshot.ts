import { parseArgs } from 'node:util';
import pg from 'pg';
import { SnapshotRequest } from '@msr/protocol/messages';
import { SourceCatalog } from '../capture/catalog.js';
import { KafkaSink } from '../capture/kafka-sink.js';
import { publishedTables, snapshotAgain } from '../capture/resnapshot.js';
import { sourceClientConfig } from '../capture/source.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { createPool } from '../db/pool.js';
import { kafkaClient } from '../ingest/kafka-client.js';
import { SnapshotSignals } from '../ingest/signals.js';
import { createLogger } from '../logger.js';

// npm run snapshot -- --source gis_server gis.bookmark gis.geo_entity [--incremental]
// For the source that CAPTURE_SOURCE_URL names (its CAPTURE_SOURCE_NAME), snapshots the tables
// again itself, as POST /api/v1/snapshots does on the capturing server, waits until they are
// stored (or sent to Kafka with CAPTURE_TO=kafka) and prints the row count. For any other source
// it sends Debezium's execute-snapshot signal to SIGNAL_TOPIC on KAFKA_BROKERS and prints it.

/** The captured source's tables snapshotted again; throws a message naming what is wrong. */
async function snapshotCapturedSource(config: Config, collections: readonly string[]): Promise<object> {
  const capture = config.capture!;
  if (capture.to === 'database' && !config.databaseUrl) {
    throw new Error('DATABASE_URL is not set: the snapshot is stored in the msr database it names');
  }
  const log = createLogger(config.logLevel, { toStderr: true });
  const source = new pg.Pool({ ...sourceClientConfig(capture), max: 1 });
  // Where the rows go: Kafka with CAPTURE_TO=kafka (rows it refuses to the msr database when
  // DATABASE_URL names it), else the msr database.
  const database = config.databaseUrl ? createPool(config.databaseUrl, 1, log) : undefined;
  const into =
    capture.to === 'kafka'
      ? new KafkaSink(kafkaClient({ ...config.kafka, brokers: config.kafka.brokers! }), log, database)
      : database!;
  try {
    const chosen = await publishedTables(new SourceCatalog(source), capture.publication, collections);
    if ('refused' in chosen) throw new Error(chosen.refused);
    const rows = await snapshotAgain(capture, chosen.tables, into);
    return { source: capture.sourceName, collections, type: 'blocking', via: 'capture', rows };
  } finally {
    if (into instanceof KafkaSink) await into.stop();
    await database?.end();
    await source.end();
  }
}

const usage = 'usage: npm run snapshot -- --source <topic.prefix> <schema.table>... [--incremental]';

try {
  const { values, positionals } = parseArgs({
    options: { source: { type: 'string' }, incremental: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  const request = SnapshotRequest.safeParse({
    source: values.source,
    collections: positionals,
    type: values.incremental ? 'incremental' : 'blocking',
  });
  if (!request.success) {
    const problems = request.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n  ');
    process.stderr.write(`${usage}\n  ${problems}\n`);
    process.exit(2);
  }
  const config = loadConfig();
  if (config.capture && request.data.source === config.capture.sourceName) {
    process.stdout.write(
      `${JSON.stringify(await snapshotCapturedSource(config, request.data.collections))}\n`,
    );
    process.exit(0);
  }
  if (!config.kafka.brokers) {
    process.stderr.write('KAFKA_BROKERS is not set: no Kafka to send the signal to\n');
    process.exit(2);
  }
  const signals = new SnapshotSignals(
    { ...config.kafka, brokers: config.kafka.brokers },
    config.kafka.signalTopic,
  );
  try {
    process.stdout.write(`${JSON.stringify(await signals.send(request.data))}\n`);
  } finally {
    await signals.stop();
  }
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${(err as Error).message}\n${usage}\n`);
  process.exit(1);
}
