import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type LogEntry } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { describeConnectionFailure } from '../connection-failure.js';
import { connectUnlessAborted, kafkaClient, kafkaLogLevel } from './kafka-client.js';
import { LagWatch, type PartitionLag } from './lag-watch.js';
import { Refusals } from './refusals.js';
import type { Metrics } from '../metrics.js';
import { DecodePool } from './decode-pool.js';
import { storeBatch } from './store.js';
import { StoreChains, type StoreOutcome } from './store-chains.js';
import type { DecodedBatch } from './decode-batch.js';
import { ingestTopics } from './topics.js';
import type { FailedRecord, StoredChange } from './change.js';

export type IngestState = 'starting' | 'consuming' | 'retrying' | 'stopped' | 'failed';

export interface IngestStatus {
  readonly state: IngestState;
  readonly topics: readonly string[];
  readonly error?: string;
  /** Records in the subscribed topics after the group's committed offsets, as last polled. */
  readonly lag?: number;
  /** Why the lag is not known now (its last poll failed). */
  readonly lagUnknown?: string;
  /** Tables whose records were refused lately (msr.ingest_error), with reason and count. */
  readonly warnings?: readonly string[];
}

export interface IngestOptions {
  /** How often to look for new topics matching the pattern (Debezium creates one per table). */
  readonly topicRefreshMs?: number;
  /** How often to poll the group's lag (committed offsets against the topics' ends). */
  readonly lagPollMs?: number;
  /** Called after a batch's database commit and before its Kafka offset commit (crash drills). */
  readonly afterDatabaseCommit?: (batch: {
    topic: string;
    partition: number;
    lastOffset: string;
  }) => void | Promise<void>;
}

const MAX_BACKOFF_MS = 10_000;

/**
 * Consumes Debezium's change topics into msr.cdc_event. Each Kafka batch is stored in one
 * transaction (idempotent on topic/partition/offset), and its offsets are committed only after
 * that commit: a crash in between redelivers the batch, which stores nothing twice. When the
 * database is down the partition pauses and the write is retried with backoff, never skipped;
 * a record that cannot be decoded goes to msr.ingest_error and consumption goes on.
 */
export class Ingest {
  private readonly kafka: Kafka;
  private consumer: Consumer | undefined;
  /** One admin connection for the topic listing and the lag polls, made on first use. */
  private admin: Promise<Admin> | undefined;
  private subscribed: string[] = [];
  /** The topics of the last subscription a topic refresh asked for. */
  private asked: string[] | undefined;
  private stateValue: IngestState = 'starting';
  private lastError: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private readonly lag: LagWatch;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly chains = new StoreChains();
  /** Consumers being replaced: their batches in hand are stored, no new ones. */
  private readonly retiring = new WeakSet<Consumer>();
  private readonly refusals: Refusals;
  private readonly decoders: DecodePool;
  private readonly stopping = new AbortController();
  private restarting: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly config: Config['kafka'] & { brokers: readonly string[] },
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: IngestOptions = {},
  ) {
    this.refusals = new Refusals(log, metrics);
    this.decoders = new DecodePool(config.decodeThreads, log);
    this.lag = new LagWatch(() => this.partitionLags(), metrics.ingestLag, log);
    this.kafka = kafkaClient(config, {
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => this.kafkaLog(entry),
      retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 10_000 },
    });
  }

  get status(): IngestStatus {
    const warnings = this.refusals.recent();
    return {
      state: this.stateValue,
      topics: this.subscribed,
      ...(warnings.length > 0 ? { warnings } : {}),
      ...(this.lastError ? { error: this.lastError } : {}),
      ...(this.lag.lag === undefined ? {} : { lag: this.lag.lag }),
      ...(this.lag.unknown === undefined ? {} : { lagUnknown: this.lag.unknown }),
    };
  }

  /**
   * Connects in the background, retrying with backoff while Kafka is unreachable, so the server
   * (and replay) is up without Kafka; /readyz says how ingest is doing.
   */
  start(): void {
    this.restarting = this.connect();
    this.lagTimer = setInterval(() => void this.lag.refresh(), this.options.lagPollMs ?? 10_000);
    this.lagTimer.unref();
    if (!this.config.topics) {
      this.refreshTimer = setInterval(() => void this.refreshTopics(), this.options.topicRefreshMs ?? 10_000);
      this.refreshTimer.unref();
    }
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopping.signal.aborted; attempt++) {
      try {
        await this.restart(await this.matchingTopics());
        return;
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        this.lastError = `cannot reach Kafka: ${describeConnectionFailure(err)}`;
        const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
        this.log.warn({ err, attempt, waitMs: wait }, 'ingest could not start; retrying');
        await sleep(wait, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * Finishes the batches being written (stored and their offsets committed: kafkajs skips commits
   * once its consumer is stopping), starts no new write, then leaves the group.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.refreshTimer);
    clearInterval(this.lagTimer);
    this.lag.stop();
    await this.restarting;
    await Promise.allSettled([...this.inFlight]);
    await this.consumer?.disconnect();
    this.consumer = undefined;
    await this.decoders.stop();
    await this.dropAdmin();
    this.stateValue = 'stopped';
  }

  /** Runs admin requests on the shared connection; after a failure the next call reconnects. */
  private async withAdmin<T>(work: (admin: Admin) => Promise<T>): Promise<T> {
    // A poll still running when stop() dropped the connection must not open a new one.
    if (this.stopping.signal.aborted) throw new Error('the ingest is stopping');
    this.admin ??= (async () => {
      const admin = this.kafka.admin();
      await connectUnlessAborted(admin, this.stopping.signal);
      return admin;
    })();
    try {
      return await work(await this.admin);
    } catch (err) {
      await this.dropAdmin();
      throw err;
    }
  }

  private async dropAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    await admin?.then((a) => a.disconnect()).catch(() => undefined);
  }

  private get heartbeatMs(): number {
    return Math.min(3_000, Math.floor(this.config.sessionTimeoutMs / 3));
  }

  private async matchingTopics(): Promise<string[]> {
    if (this.config.topics) return ingestTopics([], this.config);
    return ingestTopics(await this.withAdmin((admin) => admin.listTopics()), this.config);
  }

  /** Committed offsets against the end of each subscribed partition. */
  private async partitionLags(): Promise<PartitionLag[]> {
    if (this.subscribed.length === 0) return [];
    const lags: PartitionLag[] = [];
    const committed = await this.withAdmin((admin) =>
      admin.fetchOffsets({ groupId: this.config.groupId, topics: this.subscribed }),
    );
    for (const { topic, partitions } of committed) {
      const offsets = await this.withAdmin((admin) => admin.fetchTopicOffsets(topic));
      const ends = new Map(offsets.map((p) => [p.partition, p]));
      for (const p of partitions) {
        const end = ends.get(p.partition);
        if (!end) continue;
        // Nothing committed yet: everything from the start of the partition waits.
        const next = BigInt(p.offset) < 0n ? BigInt(end.low) : BigInt(p.offset);
        lags.push({
          topic,
          partition: p.partition,
          lag: Number(BigInt(end.high) > next ? BigInt(end.high) - next : 0n),
        });
      }
    }
    return lags;
  }

  private async refreshTopics(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    try {
      const topics = await this.matchingTopics();
      // Against the last list a subscription was asked for: one may still wait for the one before
      // (a group join takes seconds), and the same change must not queue a restart at each poll.
      if (topics.join('\n') === (this.asked ?? this.subscribed).join('\n')) return;
      this.asked = topics;
      this.log.info({ topics }, 'ingest topics changed; resubscribing');
      this.restarting = this.restarting.then(() => this.restart(topics));
      await this.restarting;
    } catch (err) {
      this.log.warn({ err }, 'could not refresh the ingest topic list');
    }
  }

  /** A consumer instance per subscription: kafkajs cannot change a running subscription. */
  private async restart(topics: string[]): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const old = this.consumer;
    if (old) {
      // The batches it is storing are committed before it leaves the group, else the new
      // consumer would read them again; it stores no further batch meanwhile.
      this.retiring.add(old);
      try {
        old.pause(this.subscribed.map((topic) => ({ topic })));
      } catch {
        // Not running (it crashed): nothing more comes from it anyway.
      }
      await Promise.allSettled([...this.inFlight]);
      await old.disconnect();
    }
    this.chains.clear();
    this.subscribed = topics;
    if (topics.length === 0) {
      this.consumer = undefined;
      this.stateValue = 'consuming';
      this.log.warn({ pattern: String(this.config.topicPattern) }, 'no Kafka topic matches yet; waiting');
      return;
    }
    const consumer = this.kafka.consumer({
      groupId: this.config.groupId,
      sessionTimeout: this.config.sessionTimeoutMs,
      heartbeatInterval: this.heartbeatMs,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: this.config.maxBatchBytes,
      maxBytes: Math.max(10 * 1_048_576, this.config.maxBatchBytes),
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (event) => {
      this.lastError = describeConnectionFailure(event.payload.error);
      this.log.error({ err: event.payload.error, restart: event.payload.restart }, 'ingest consumer crashed');
      if (event.payload.restart) return;
      // kafkajs gives up on errors it deems final (a member the group no longer knows, a refused
      // request): the ingest would stand still for good. It starts over with a new consumer,
      // from the committed offsets, as often as it takes; /readyz says why meanwhile.
      this.stateValue = 'failed';
      this.restarting = this.restarting.then(() => this.recover(consumer));
    });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.stateValue = 'consuming';
      this.lastError = undefined;
      this.log.info({ assignment: event.payload.memberAssignment }, 'ingest joined its consumer group');
    });
    // kafkajs retries a broker that refuses for over half a minute: a stop does not wait for it.
    await connectUnlessAborted(consumer, this.stopping.signal);
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Partitions are decoded and written side by side, each on a connection of its own: about
      // 1.8x the events/s of one at a time on 2 cores when it was measured (npm run bench:ingest).
      partitionsConsumedConcurrently: this.config.concurrentPartitions,
      eachBatch: (payload) => this.track(this.handleBatch(consumer, payload)),
    });
    this.log.info({ topics, groupId: this.config.groupId }, 'ingest consuming');
  }

  /** After a crash kafkajs does not restart from: a new consumer, after a growing wait. */
  private async recover(crashed: Consumer): Promise<void> {
    for (let attempt = 0; !this.stopping.signal.aborted && this.consumer === crashed; attempt++) {
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);
      await sleep(wait, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      if (this.stopping.signal.aborted) return;
      try {
        await this.restart(this.subscribed);
        this.log.info({ attempt: attempt + 1 }, 'ingest consumer started again after its crash');
        return;
      } catch (err) {
        this.lastError = `cannot restart the consumer: ${describeConnectionFailure(err)}`;
        this.log.warn({ err, attempt }, 'ingest consumer could not start again; retrying');
      }
    }
  }

  /** Keeps `work` among what a stop (or a new consumer) waits for. */
  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    return work.finally(() => this.inFlight.delete(work));
  }

  /**
   * Decodes a batch, then hands it to its partition's store chain and returns: kafkajs fetches
   * the next records while this batch is written (store-chains.ts).
   */
  private async handleBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (batch.messages.length === 0) return;
    const { topic, partition } = batch;
    const from = batch.messages[0]!.offset;
    const decoded = await this.decoders.decode(topic, partition, batch.messages);
    if (!(await this.chains.admit(topic, partition, from))) return;
    if (this.stopping.signal.aborted || this.retiring.has(consumer)) return;
    if (!payload.isRunning() || payload.isStale()) return;
    payload.resolveOffset(batch.lastOffset());
    const storing = this.storeAndCommit(consumer, payload, from, decoded);
    this.chains.add(topic, partition, storing);
    void this.track(storing);
  }

  private async storeAndCommit(
    consumer: Consumer,
    payload: EachBatchPayload,
    from: string,
    { changes, failures, skipped }: DecodedBatch,
  ): Promise<StoreOutcome> {
    const { batch } = payload;
    const { topic, partition } = batch;
    // The group hears from this member only through heartbeats, which kafkajs sends between
    // batches: a batch written for longer than the session timeout (a slow or locked database, a
    // large snapshot) would cost the member its partitions, and the batch its offset commit.
    const beat = setInterval(() => void payload.heartbeat().catch(() => undefined), this.heartbeatMs);
    try {
      if (skipped > 0) this.metrics.ingestSkipped.inc({ topic }, skipped);
      const timer = this.metrics.ingestBatchSeconds.startTimer();
      const stored = await this.storeWithRetry(payload, changes, failures);
      // Stopping or lost the partition: not committed, so it is fetched again.
      if (!stored) return this.notStored(consumer, topic, partition, from);
      timer();
      const lastOffset = batch.lastOffset();
      await this.options.afterDatabaseCommit?.({ topic, partition, lastOffset });
      const next = (BigInt(lastOffset) + 1n).toString();
      await consumer.commitOffsets([{ topic, partition, offset: next }]);

      this.metrics.ingestEvents.inc({ topic }, changes.length);
      this.refusals.note(stored.failures);
      this.lag.noteBatch(topic, partition, Number(BigInt(batch.highWatermark) - BigInt(next)));
      return { stored: true, from };
    } catch (error) {
      this.log.warn({ err: error, topic, partition, from }, 'ingest batch not committed; fetching it again');
      return this.notStored(consumer, topic, partition, from, error);
    } finally {
      clearInterval(beat);
    }
  }

  /** kafkajs has fetched past this batch already: it is to fetch again from its first offset. */
  private notStored(
    consumer: Consumer,
    topic: string,
    partition: number,
    from: string,
    error?: unknown,
  ): StoreOutcome {
    if (!this.stopping.signal.aborted) {
      try {
        consumer.seek({ topic, partition, offset: from });
      } catch (err) {
        // Not running any more: the next consumer starts from the committed offsets.
        this.log.debug({ err, topic, partition }, 'could not seek back to a batch not stored');
      }
    }
    return { stored: false, from, ...(error === undefined ? {} : { error }) };
  }

  private async storeWithRetry(
    payload: EachBatchPayload,
    changes: StoredChange[],
    failures: FailedRecord[],
  ): Promise<{ failures: readonly FailedRecord[] } | undefined> {
    let resume: (() => void) | undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.stopping.signal.aborted || !payload.isRunning() || payload.isStale()) return undefined;
        try {
          const result = await storeBatch(this.pool, changes, failures);
          if (this.stateValue === 'retrying') {
            this.stateValue = 'consuming';
            this.lastError = undefined;
            this.log.info({ attempts: attempt + 1 }, 'ingest writes resumed');
          }
          return result;
        } catch (err) {
          this.metrics.ingestRetries.inc();
          this.stateValue = 'retrying';
          this.lastError = `database write failed: ${(err as Error).message}`;
          resume ??= payload.pause();
          const wait = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt);
          this.log.warn({ err, attempt, waitMs: wait }, 'ingest write failed; partition paused, retrying');
          await sleep(wait, undefined, { signal: this.stopping.signal }).catch(() => undefined);
          await payload.heartbeat().catch(() => undefined);
        }
      }
    } finally {
      resume?.();
    }
  }

  private kafkaLog(entry: LogEntry): void {
    const { message, ...extra } = entry.log;
    this.log[kafkaLogLevel(entry)]({ kafka: entry.namespace, ...extra }, message);
    // While (re)connecting, kafkajs retries a broker that refuses for over half a minute before
    // it fails: /readyz says why from the first refusal on.
    const connecting = this.stateValue === 'starting' || this.stateValue === 'failed';
    if (connecting && entry.level <= logLevel.ERROR && entry.namespace === 'Connection') {
      this.lastError = `cannot reach Kafka: ${message}`;
    }
  }
}
