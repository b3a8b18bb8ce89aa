import { parseArgs } from 'node:util';
import { SnapshotRequest } from '../../protocol/messages.js';
import { ConfigError, loadConfig } from '../config.js';
import { SnapshotSignals } from '../ingest/signals.js';

// npm run snapshot -- --source gis_server gis.bookmark gis.geo_entity [--incremental]
// Sends Debezium's execute-snapshot signal for the given tables to SIGNAL_TOPIC on KAFKA_BROKERS,
// as POST /api/v1/snapshots does, and prints the signal.

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
