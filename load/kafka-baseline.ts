// Baseline (c): "state at T" straight from Kafka, as a user without MSR would get it. The change
// topics hold every event as Debezium writes them (one topic per table, record time = commit
// time); the broker's time index gives each partition's offset at T, and a consumer folds every
// record from the start of the topic up to it. Measured on the same events, in the same run.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, Partitioners, type KafkaMessage, type Message } from 'kafkajs';
import type { Pool } from 'pg';
import Cursor from 'pg-cursor';

interface Row {
  source: string;
  table_schema: string;
  table_name: string;
  entity_id: string;
  op: string;
  before: unknown;
  after: unknown;
  ts_us: string;
}

export interface LoadedTopics {
  topics: string[];
  records: number;
  megabytes: number;
  ms: number;
}

export interface KafkaStateAt {
  /** From the offset lookup to the last folded record, consumer start and group join included. */
  ms: number;
  /** The fold alone: from the first fetched batch to the last folded record. */
  foldMs: number;
  records: number;
  entities: number;
  /** The folded state: "topic|entity id" to the row after its last change. */
  state: Map<string, unknown>;
}

const kafkaClient = (brokers: string[]) =>
  new Kafka({ clientId: 'msr-bench', brokers, logLevel: logLevel.NOTHING });

/**
 * Writes every cdc_event row into per-table topics named `<prefix><source>.<schema>.<table>`, in
 * replay order, as schemaless Debezium envelopes (the lighter form: the baseline parses less than
 * with embedded schemas). Key = the entity id; truncates carry no key, as with Debezium.
 */
export async function loadTopics(pool: Pool, brokers: string[], prefix: string): Promise<LoadedTopics> {
  const started = performance.now();
  const kafka = kafkaClient(brokers);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const client = await pool.connect();
  await producer.connect();
  const topics = new Set<string>();
  let records = 0;
  let bytes = 0;
  try {
    const cursor = client.query(
      new Cursor<Row>(
        `select source, table_schema, table_name, entity_id, op, before, after,
                (extract(epoch from event_timestamp) * 1000000)::bigint::text as ts_us
           from msr.cdc_event
          order by event_timestamp, lsn nulls first, kafka_offset nulls first, id`,
      ),
    );
    for (;;) {
      // 1,000 rows of ~700 bytes stay under the broker's 1 MB request limit (message.max.bytes).
      const batch = await cursor.read(1000);
      if (batch.length === 0) break;
      const byTopic = new Map<string, Message[]>();
      for (const row of batch) {
        const topic = `${prefix}${row.source}.${row.table_schema}.${row.table_name}`;
        const tsMs = Math.floor(Number(row.ts_us) / 1000);
        const value = JSON.stringify({
          before: row.before,
          after: row.after,
          source: {
            connector: 'postgresql',
            name: row.source,
            ts_us: Number(row.ts_us),
            schema: row.table_schema,
            table: row.table_name,
          },
          op: row.op,
          ts_ms: tsMs,
        });
        bytes += value.length;
        const message: Message = {
          key: row.op === 't' ? null : row.entity_id,
          value,
          timestamp: String(tsMs),
        };
        const list = byTopic.get(topic);
        if (list) list.push(message);
        else byTopic.set(topic, [message]);
      }
      for (const topic of byTopic.keys()) topics.add(topic);
      await producer.sendBatch({
        acks: 1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      records += batch.length;
    }
    await cursor.close();
  } finally {
    client.release();
    await producer.disconnect();
  }
  return {
    topics: [...topics].sort(),
    records,
    megabytes: Math.round(bytes / 2 ** 20),
    ms: Math.round(performance.now() - started),
  };
}

/**
 * The state at t (every record with a timestamp <= t, in ms): the offsets at t + 1 ms from the
 * broker's time index, then one consumer in a fresh group folding each topic from its start.
 */
export async function kafkaStateAt(brokers: string[], topics: string[], t: number): Promise<KafkaStateAt> {
  const started = performance.now();
  const kafka = kafkaClient(brokers);
  const admin = kafka.admin();
  await admin.connect();
  // Where each partition's fold ends (exclusive), by "topic/partition".
  const stops = new Map<string, number>();
  try {
    for (const topic of topics) {
      for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(topic, t + 1)) {
        stops.set(`${topic}/${partition}`, Number(offset));
      }
    }
  } finally {
    await admin.disconnect();
  }
  const open = new Set([...stops].filter(([, stop]) => stop > 0).map(([key]) => key));
  const state = new Map<string, unknown>();
  let records = 0;
  let firstBatch = 0;
  const consumer = kafka.consumer({
    groupId: `msr-bench-${randomBytes(4).toString('hex')}`,
    // Generous fetches: the baseline is not held back by small defaults.
    maxBytes: 64 * 2 ** 20,
    maxBytesPerPartition: 32 * 2 ** 20,
  });
  await consumer.connect();
  try {
    if (open.size > 0) {
      await new Promise<void>((resolve, reject) => {
        consumer
          .subscribe({ topics, fromBeginning: true })
          .then(() =>
            consumer.run({
              eachBatch: async ({ batch }) => {
                const key = `${batch.topic}/${batch.partition}`;
                if (!open.has(key)) return;
                if (firstBatch === 0) firstBatch = performance.now();
                records += foldBatch(state, batch.topic, batch.messages, stops.get(key)!);
                if (Number(batch.lastOffset()) + 1 >= stops.get(key)!) {
                  open.delete(key);
                  if (open.size === 0) resolve();
                }
              },
            }),
          )
          .catch(reject);
      });
    }
    const done = performance.now();
    return {
      ms: Math.round(done - started),
      foldMs: firstBatch ? Math.round(done - firstBatch) : 0,
      records,
      entities: state.size,
      state,
    };
  } finally {
    await consumer.disconnect();
  }
}

/** Folds a batch's records before `stop` into the state (keys "topic|entity"); returns how many. */
function foldBatch(
  state: Map<string, unknown>,
  topic: string,
  messages: readonly KafkaMessage[],
  stop: number,
): number {
  const tablePrefix = `${topic}|`;
  let folded = 0;
  for (const message of messages) {
    if (Number(message.offset) >= stop) break;
    folded += 1;
    const event = JSON.parse(message.value!.toString()) as { op: string; after: unknown };
    if (event.op === 't') {
      for (const entity of state.keys()) if (entity.startsWith(tablePrefix)) state.delete(entity);
    } else {
      const entity = tablePrefix + message.key!.toString();
      if (event.op === 'd') state.delete(entity);
      else state.set(entity, event.after);
    }
  }
  return folded;
}
