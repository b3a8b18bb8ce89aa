import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import type { SnapshotRequest } from '@msr/protocol/messages';
import type { KafkaConnection } from '../config.js';
import { kafkaClient } from './kafka-client.js';

export interface SnapshotSignal {
  readonly id: string;
  readonly topic: string;
  readonly source: string;
  readonly collections: readonly string[];
  readonly type: 'blocking' | 'incremental';
}

/**
 * Produces Debezium's execute-snapshot signal to the connector's Kafka signal channel
 * (signal.enabled.channels=kafka, signal.kafka.topic=SIGNAL_TOPIC). The connector only reads
 * records whose key is its topic.prefix.
 */
export class SnapshotSignals {
  private producer: Promise<Producer> | undefined;

  constructor(
    private readonly connection: KafkaConnection & { readonly brokers: readonly string[] },
    private readonly topic: string,
  ) {}

  async send(request: SnapshotRequest): Promise<SnapshotSignal> {
    const id = randomUUID();
    const value = {
      id,
      type: 'execute-snapshot',
      data: { 'data-collections': request.collections, type: request.type },
    };
    const producer = await this.connected();
    await producer.send({
      topic: this.topic,
      messages: [{ key: request.source, value: JSON.stringify(value) }],
    });
    return {
      id,
      topic: this.topic,
      source: request.source,
      collections: request.collections,
      type: request.type,
    };
  }

  async stop(): Promise<void> {
    const producer = await this.producer?.catch(() => undefined);
    this.producer = undefined;
    await producer?.disconnect();
  }

  private connected(): Promise<Producer> {
    if (!this.producer) {
      const kafka = kafkaClient(this.connection, { retry: { retries: 3 } });
      const producer = kafka.producer({ allowAutoTopicCreation: true });
      this.producer = producer.connect().then(() => producer);
      // A failed connection is not kept: the next request tries again.
      this.producer.catch(() => (this.producer = undefined));
    }
    return this.producer;
  }
}
