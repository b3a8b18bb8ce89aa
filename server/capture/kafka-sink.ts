import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { CapturedChange } from './changes.js';
import { captureRecord } from './kafka-records.js';

/** Sends of one batch before the failure is the capture's (which then starts over from the slot). */
const SEND_ATTEMPTS = 6;
/** Record bytes per produce request. */
const REQUEST_BYTES = 512 * 1024;

/**
 * Where CAPTURE_TO=kafka sends captured changes: Debezium-format records on one topic per table,
 * acknowledged by every in-sync replica before the slot's position is confirmed (the caller
 * confirms after `send` resolves). The producer is idempotent, so a retried request adds no
 * duplicate; a change sent again after a crash carries the coordinates that make the ingest
 * store it once. Topics are made when missing (brokers often refuse to make them on first use).
 */
export class KafkaSink {
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private readonly topics = new Set<string>();

  constructor(
    private readonly kafka: Kafka,
    private readonly log: Logger,
  ) {}

  async send(changes: readonly CapturedChange[]): Promise<void> {
    if (changes.length === 0) return;
    const records = changes.map(captureRecord);
    await this.retried(() => this.ensureTopics([...new Set(records.map((r) => r.topic))]));
    // A broker refuses a record batch over its message.max.bytes (1 MiB by default), and one
    // request carries one batch per partition: requests stay well under that, in commit order.
    for (let start = 0; start < records.length;) {
      let end = start;
      for (let bytes = 0; end < records.length && (end === start || bytes < REQUEST_BYTES); end++) {
        bytes += records[end]!.value.length + (records[end]!.key?.length ?? 0);
      }
      const byTopic = new Map<string, { key: Buffer | null; value: Buffer }[]>();
      for (const { topic, key, value } of records.slice(start, end)) {
        let messages = byTopic.get(topic);
        if (!messages) byTopic.set(topic, (messages = []));
        messages.push({ key, value });
      }
      const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
      await this.retried(async () => {
        const producer = await this.connectedProducer();
        await producer.sendBatch({ acks: -1, topicMessages });
      });
      start = end;
    }
  }

  /**
   * A topic just made may not be served yet by every broker ("does not host this
   * topic-partition"); sending again is safe, since the ingest stores a change once.
   */
  private async retried(work: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await work();
        return;
      } catch (err) {
        if (!transient(err) || attempt >= SEND_ATTEMPTS - 1) throw err;
        this.log.warn({ err, attempt }, 'capture send to Kafka failed; sending again');
        await sleep(200 * 2 ** attempt);
      }
    }
  }

  async stop(): Promise<void> {
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.producer = undefined;
    this.admin = undefined;
  }

  private async connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      // One request in flight keeps the records of a table in commit order through retries.
      const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      this.producer = producer;
    }
    return this.producer;
  }

  private async ensureTopics(topics: string[]): Promise<void> {
    const missing = topics.filter((t) => !this.topics.has(t));
    if (missing.length === 0) return;
    if (!this.admin) {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    const existing = new Set(await this.admin.listTopics());
    const create = missing.filter((t) => !existing.has(t));
    if (create.length > 0) {
      await this.admin.createTopics({ topics: create.map((topic) => ({ topic })), waitForLeaders: true });
      this.log.info({ topics: create }, 'capture topics created');
    }
    for (const t of missing) this.topics.add(t);
  }
}

/** kafkajs marks errors that may pass as retriable, also once its own retries ran out. */
function transient(err: unknown): boolean {
  const e = err as { retriable?: boolean; name?: string };
  return e.retriable === true || e.name === 'KafkaJSNumberOfRetriesExceeded';
}
