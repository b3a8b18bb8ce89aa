import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { KafkaConnection } from '../config.js';

/**
 * Every Kafka client MSR makes (the ingest's consumer and admin, snapshot signals, the backup's
 * and restore's offsets) reaches the cluster through here, with the configured TLS and SASL.
 */
export function kafkaClient(
  connection: KafkaConnection & { readonly brokers: readonly string[] },
  options: Omit<KafkaConfig, 'brokers' | 'clientId' | 'ssl' | 'sasl'> = {},
): Kafka {
  const { tls, sasl } = connection;
  return new Kafka({
    clientId: connection.clientId,
    brokers: [...connection.brokers],
    logLevel: logLevel.NOTHING,
    ...options,
    // A CA given replaces the system's; none given: the broker's certificate must chain to those.
    ...(tls ? { ssl: { ...tls, rejectUnauthorized: true } } : {}),
    ...(sasl ? { sasl: { ...sasl } as SASLOptions } : {}),
  });
}
