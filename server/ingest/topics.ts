import type { Config } from '../config.js';

/**
 * The topics the ingest consumes, out of the broker's: the configured list, or those matching the
 * pattern, leaving out Kafka's and Debezium's internal topics and the snapshot signal topic.
 * The consumer subscribes to them and a backup records their offsets: one rule for both.
 */
export function ingestTopics(all: readonly string[], kafka: Config['kafka']): string[] {
  if (kafka.topics) return [...kafka.topics];
  return all
    .filter((t) => !t.startsWith('__') && t !== kafka.signalTopic && kafka.topicPattern.test(t))
    .sort();
}
