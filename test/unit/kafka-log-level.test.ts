import { logLevel, type LogEntry } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaLogLevel } from '../../server/ingest/kafka-client.js';

const entry = (level: logLevel, namespace: string, log: Record<string, unknown>): LogEntry => ({
  namespace,
  level,
  label: logLevel[level],
  log: { timestamp: 'now', message: 'm', ...log },
});

describe('the level of a kafkajs log entry', () => {
  it('keeps what kafkajs gives up on as an error', () => {
    expect(
      kafkaLogLevel(entry(logLevel.ERROR, 'Consumer', { message: 'Crash: KafkaJSNumberOfRetriesExceeded' })),
    ).toBe('error');
    expect(kafkaLogLevel(entry(logLevel.ERROR, 'Runner', { message: 'Error when calling eachBatch' }))).toBe(
      'error',
    );
  });

  it('logs a failure kafkajs retries, and a connection error on the way, as a warning', () => {
    expect(kafkaLogLevel(entry(logLevel.ERROR, 'BrokerPool', { retryCount: 2, retryTime: 1200 }))).toBe(
      'warn',
    );
    expect(
      kafkaLogLevel(
        entry(logLevel.ERROR, 'Consumer', { message: 'Restarting the consumer in 3000ms', retryTime: 3000 }),
      ),
    ).toBe('warn');
    expect(
      kafkaLogLevel(
        entry(logLevel.ERROR, 'Connection', { message: 'Connection error: connect ECONNREFUSED' }),
      ),
    ).toBe('warn');
  });

  it('keeps warnings, and sends info and debug to debug', () => {
    expect(kafkaLogLevel(entry(logLevel.WARN, 'Consumer', {}))).toBe('warn');
    expect(kafkaLogLevel(entry(logLevel.INFO, 'Consumer', {}))).toBe('debug');
    expect(kafkaLogLevel(entry(logLevel.DEBUG, 'Connection', {}))).toBe('debug');
  });
});
