import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  startKafkaCluster,
  type KafkaCluster,
  type SecureListener,
} from '../../scripts/services/kafka-cluster.js';

interface Shared {
  cluster: Promise<{ cluster: KafkaCluster; dir: string }>;
  users: number;
}
// Both dialects' projects list this setup; global setups run in vitest's main process, so the
// first starts the cluster and the last to finish stops it (one cluster per run, not per project).
const KEY = Symbol.for('msr.test.kafka');
const holder = globalThis as { [KEY]?: Shared };

/** One Kafka broker (with a SASL_SSL listener too) and one Connect worker with Debezium for the whole run. */
export default async function setup(project: TestProject) {
  const shared = (holder[KEY] ??= {
    users: 0,
    cluster: (async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'msr-kafka-'));
      return { cluster: await startKafkaCluster(dir, { secure: true }), dir };
    })(),
  });
  shared.users++;
  const { cluster, dir } = await shared.cluster;
  project.provide('kafkaBrokers', cluster.brokers);
  project.provide('kafkaConnectUrl', cluster.connectUrl);
  project.provide('kafkaSecure', cluster.secure!);
  return async () => {
    if (--shared.users > 0) return;
    delete holder[KEY];
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string[];
    kafkaConnectUrl: string;
    kafkaSecure: SecureListener;
  }
}
