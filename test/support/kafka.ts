import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import type { HistoryEvent } from './history.js';

/** The run's Kafka broker (test/support/global-kafka.ts), with helpers to feed it records. */
export const brokers = () => inject('kafkaBrokers');

export function kafka(): Kafka {
  return new Kafka({ clientId: 'msr-test', brokers: brokers(), logLevel: logLevel.NOTHING });
}

/** A topic prefix of its own per test, so tests sharing the broker never see each other's records. */
export const uniquePrefix = (name: string) => `${name}${randomBytes(4).toString('hex')}`;

export async function withAdmin<T>(work: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createTopics(topics: { topic: string; partitions: number }[]): Promise<void> {
  await withAdmin((admin) =>
    admin.createTopics({
      topics: topics.map((t) => ({ topic: t.topic, numPartitions: t.partitions })),
      waitForLeaders: true,
    }),
  );
}

export async function withProducer<T>(work: (producer: Producer) => Promise<T>): Promise<T> {
  const producer = kafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    return await work(producer);
  } finally {
    await producer.disconnect();
  }
}

/** The environment of a server on `databaseUrl` ingesting the topics of one test's prefix. */
export function serverWithIngest(
  databaseUrl: string,
  prefix: string,
  groupId: string,
): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    AUTH_MODE: 'none',
    DEMO: 'false',
    PORT: '0',
    LOG_LEVEL: 'warn',
    KAFKA_BROKERS: brokers().join(','),
    KAFKA_GROUP_ID: groupId,
    KAFKA_TOPIC_PATTERN: `^${prefix}\\.`,
  };
}

/** Committed offsets of a group per partition, and the topic's high watermarks. */
export async function offsets(groupId: string, topic: string) {
  return withAdmin(async (admin) => {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const high = await admin.fetchTopicOffsets(topic);
    return {
      committed: Object.fromEntries(committed!.partitions.map((p) => [p.partition, p.offset])),
      high: Object.fromEntries(high.map((p) => [p.partition, p.high])),
    };
  });
}

/**
 * A test history event as Debezium's PostgreSQL connector would put it on Kafka (JSON converter
 * without schemas): topic <prefix>.<schema>.<table>, key {id}, value with before/after/source/op.
 */
export function debeziumRecord(
  e: HistoryEvent,
  prefix: string,
): { topic: string; key: string | null; value: string } {
  const us = BigInt(e.ts) * 1000n;
  return {
    topic: `${prefix}.${e.schema}.${e.table}`,
    key: e.op === 't' ? null : JSON.stringify({ id: e.entityId }),
    value: JSON.stringify({
      before: e.before ?? null,
      after: e.after,
      source: {
        version: '3.0.8.Final',
        connector: 'postgresql',
        name: prefix,
        ts_ms: e.ts,
        ts_us: Number(us),
        snapshot: e.op === 'r' ? 'true' : 'false',
        db: 'source',
        schema: e.schema,
        table: e.table,
        txId: 1000 + (e.lsn ?? 0),
        lsn: e.lsn,
      },
      op: e.op,
      ts_ms: e.ts,
    }),
  };
}

/** The first `count` records of a topic (all partitions), read by a throwaway consumer group. */
export async function readTopic(
  topic: string,
  count: number,
): Promise<{ key: string | null; value: string | null }[]> {
  const consumer = kafka().consumer({ groupId: uniquePrefix('reader') });
  const records: { key: string | null; value: string | null }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${records.length} of ${count} records in ${topic}`)),
        30_000,
      );
      void consumer.run({
        eachMessage: async ({ message }) => {
          records.push({ key: message.key?.toString() ?? null, value: message.value?.toString() ?? null });
          if (records.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return records.slice(0, count);
}
