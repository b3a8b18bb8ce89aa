import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startKafkaCluster } from './kafka-cluster.js';

/** One Kafka broker and one Connect worker with Debezium for the whole run. */
export default async function setup(project: TestProject) {
  const dir = await mkdtemp(path.join(tmpdir(), 'msr-kafka-'));
  const cluster = await startKafkaCluster(dir);
  project.provide('kafkaBrokers', cluster.brokers);
  project.provide('kafkaConnectUrl', cluster.connectUrl);
  return async () => {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string[];
    kafkaConnectUrl: string;
  }
}
