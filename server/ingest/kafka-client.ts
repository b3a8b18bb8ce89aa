import { Kafka, logLevel, type Admin, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
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

/**
 * `work`, or a rejection as soon as `signal` aborts: a stop does not wait out kafkajs's retries
 * against a broker that is gone (over half a minute). The work itself goes on, unwaited.
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  const stopping = () => new Error('stopping: a Kafka request was given up');
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(stopping());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(stopping());
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/** Connects `client` unless `signal` aborts first; one that connects after the abort is disconnected. */
export async function connectUnlessAborted(
  client: Pick<Admin, 'connect' | 'disconnect'>,
  signal: AbortSignal,
): Promise<void> {
  const attempt = client.connect();
  attempt.then(() => (signal.aborted ? client.disconnect() : undefined)).catch(() => undefined);
  await unlessAborted(attempt, signal);
}

/**
 * The level MSR logs a kafkajs entry at. kafkajs logs at error level each failure it is about to
 * retry (with `retryCount` and `retryTime`), and each connection error on the way: during a broker
 * restart that is a page of errors for nothing lost. Those are warnings here; what kafkajs gives
 * up on (a crash, a failed batch handler) stays an error.
 */
export function kafkaLogLevel(entry: LogEntry): 'error' | 'warn' | 'debug' {
  if (entry.level > logLevel.WARN) return 'debug';
  if (entry.level === logLevel.WARN) return 'warn';
  const retried = 'retryTime' in entry.log || 'retryCount' in entry.log;
  return retried || entry.namespace === 'Connection' ? 'warn' : 'error';
}
