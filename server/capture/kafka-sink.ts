import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { CapturedChange } from './changes.js';
import type { FailedRecord } from '../ingest/change.js';
import { writeBatch } from '../ingest/writer.js';
import { captureRecord } from './kafka-records.js';
import { connectUnlessAborted, unlessAborted } from '../ingest/kafka-client.js';

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
  /** Aborted by giveUp(): Kafka requests still waiting fail at once. */
  private readonly stopping = new AbortController();
  /** Sends under way (the stream's and a snapshot's may overlap): when each began. */
  private readonly sending = new Set<{ since: number }>();
  /** The last failure a send under way met (and retried). */
  private failure: string | undefined;

  /** `errors`: the msr database, where changes Kafka refuses are kept (msr.ingest_error). */
  constructor(
    private readonly kafka: Kafka,
    private readonly log: Logger,
    private readonly errors: Pool | undefined,
  ) {}

  /**
   * Sends the changes in commit order and resolves once every broker in sync has them, with the
   * changes Kafka refused for good: a record over the broker's message.max.bytes can never be
   * sent, so it is kept in msr.ingest_error (REJECTED_BY_KAFKA, with its bytes) and the rest go
   * on, rather than the capture retrying it forever. Throws when Kafka cannot be reached, or a
   * refused change has nowhere to be kept: nothing may be confirmed to the slot then.
   */
  async send(changes: readonly CapturedChange[]): Promise<FailedRecord[]> {
    if (changes.length === 0) return [];
    const under = { since: Date.now() };
    this.sending.add(under);
    try {
      return await this.sendAll(changes);
    } finally {
      this.sending.delete(under);
      if (this.sending.size === 0) this.failure = undefined;
    }
  }

  /**
   * How long the changes being sent have waited for Kafka's acknowledgement, with the last
   * failure met meanwhile; undefined while nothing is waiting. kafkajs retries a broker that is
   * gone for half a minute and more before a send fails, so the wait is what tells.
   */
  waiting(): { ms: number; failure?: string } | undefined {
    // A Set iterates in insertion order: the first is the oldest.
    const oldest = this.sending.values().next().value;
    if (!oldest) return undefined;
    return { ms: Date.now() - oldest.since, ...(this.failure ? { failure: this.failure } : {}) };
  }

  private async sendAll(changes: readonly CapturedChange[]): Promise<FailedRecord[]> {
    const records = changes.map((change) => ({ change, ...captureRecord(change) }));
    await this.retried(() => this.ensureTopics([...new Set(records.map((r) => r.topic))]));
    const refused: FailedRecord[] = [];
    // A broker refuses a record batch over its message.max.bytes (1 MiB by default), and one
    // request carries one batch per partition: requests stay well under that, in commit order.
    for (let start = 0; start < records.length;) {
      let end = start;
      for (let bytes = 0; end < records.length && (end === start || bytes < REQUEST_BYTES); end++) {
        bytes += records[end]!.value.length + (records[end]!.key?.length ?? 0);
      }
      const chunk = records.slice(start, end);
      try {
        await this.sendInOrder(chunk);
      } catch (err) {
        if (!tooLarge(err)) throw err;
        // Find the record(s) over the limit: one by one, the others still in commit order.
        for (const record of chunk) {
          try {
            await this.sendInOrder([record]);
          } catch (one) {
            if (!tooLarge(one)) throw one;
            const { topic, partition, offset } = record.change;
            const detail = `${record.value.length} bytes: over the broker's message.max.bytes (${(one as Error).message})`;
            this.log.error(
              { topic, partition, offset, bytes: record.value.length },
              'Kafka refused a captured change as too large; kept in msr.ingest_error',
            );
            refused.push({
              topic,
              partition,
              offset,
              key: record.key,
              value: record.value,
              reason: 'REJECTED_BY_KAFKA',
              detail,
            });
          }
        }
      }
      start = end;
    }
    if (refused.length > 0) {
      if (!this.errors) {
        throw new Error(
          `Kafka refused ${refused.length} change(s) as too large and there is no msr database to keep them in (set DATABASE_URL)`,
        );
      }
      await writeBatch(this.errors, [], refused);
    }
    return refused;
  }

  private sendInOrder(
    records: readonly { topic: string; key: Buffer | null; value: Buffer }[],
  ): Promise<void> {
    const byTopic = new Map<string, { key: Buffer | null; value: Buffer }[]>();
    for (const { topic, key, value } of records) {
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      messages.push({ key, value });
    }
    const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    return this.retried(async () => {
      const producer = await this.connectedProducer();
      await unlessAborted(producer.sendBatch({ acks: -1, topicMessages }), this.stopping.signal);
    });
  }

  /**
   * A topic just made may not be served yet by every broker ("does not host this
   * topic-partition"); sending again is safe, since the ingest stores a change once.
   */
  private async retried(work: () => Promise<void>): Promise<void> {
    const signal = this.stopping.signal;
    for (let attempt = 0; ; attempt++) {
      try {
        await work();
        return;
      } catch (err) {
        if (signal.aborted || !transient(err) || attempt >= SEND_ATTEMPTS - 1) throw err;
        this.failure = (err as Error).message;
        this.log.warn({ err, attempt }, 'capture send to Kafka failed; sending again');
        await sleep(200 * 2 ** attempt, undefined, { signal });
      }
    }
  }

  /**
   * From now on every Kafka request still waiting (a connection kafkajs retries for over half a
   * minute, a send to a broker that is gone) fails at once: the capture is stopping, and what was
   * not acknowledged is not confirmed to the slot, so it is sent again on the next start.
   */
  giveUp(): void {
    this.stopping.abort();
  }

  async stop(): Promise<void> {
    this.giveUp();
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
    this.producer = undefined;
    this.admin = undefined;
  }

  private async connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      // One request in flight keeps the records of a table in commit order through retries.
      const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await connectUnlessAborted(producer, this.stopping.signal);
      this.producer = producer;
    }
    return this.producer;
  }

  private async ensureTopics(topics: string[]): Promise<void> {
    const missing = topics.filter((t) => !this.topics.has(t));
    if (missing.length === 0) return;
    if (!this.admin) {
      const admin = this.kafka.admin();
      await connectUnlessAborted(admin, this.stopping.signal);
      this.admin = admin;
    }
    const existing = new Set(await unlessAborted(this.admin.listTopics(), this.stopping.signal));
    const create = missing.filter((t) => !existing.has(t));
    if (create.length > 0) {
      await unlessAborted(
        this.admin.createTopics({ topics: create.map((topic) => ({ topic })), waitForLeaders: true }),
        this.stopping.signal,
      );
      this.log.info({ topics: create }, 'capture topics created');
    }
    for (const t of missing) this.topics.add(t);
  }
}

/** The broker's refusal of a record over its size limit, however kafkajs wraps it. */
function tooLarge(err: unknown): boolean {
  const e = err as { type?: string; cause?: unknown; errors?: unknown[] } | null;
  if (!e || typeof e !== 'object') return false;
  return (
    e.type === 'MESSAGE_TOO_LARGE' ||
    tooLarge(e.cause) ||
    (Array.isArray(e.errors) && e.errors.some(tooLarge))
  );
}

/** kafkajs marks errors that may pass as retriable, also once its own retries ran out. */
function transient(err: unknown): boolean {
  const e = err as { retriable?: boolean; name?: string };
  return e.retriable === true || e.name === 'KafkaJSNumberOfRetriesExceeded';
}
