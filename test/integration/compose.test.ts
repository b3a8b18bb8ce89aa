import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SnapshotRequest } from '@msr/protocol/messages';
import { loadConfig } from '../../server/config.js';

// compose.yml is for users; no Docker engine runs here, so Debian's docker-compose validates it,
// and the example connector must agree with what the msr service is told to consume.

const root = new URL('../../', import.meta.url).pathname;
const available = existsSync('/usr/bin/docker-compose');

describe.skipIf(!available && !process.env.CI)('compose.yml', () => {
  const compose = (...args: string[]) =>
    promisify(execFile)('docker-compose', ['-f', 'compose.yml', ...args], { cwd: root });

  it('is a valid compose file with the whole stack', async () => {
    await expect(compose('config', '-q')).resolves.toBeDefined();
    const { stdout } = await compose('config', '--services');
    expect(stdout.trim().split('\n').sort()).toEqual(
      [
        'connect',
        'console',
        'msr',
        'redpanda',
        'register-connector',
        'source-db',
        'timescaledb',
        'topics',
      ].sort(),
    );
    const { stdout: resolved } = await compose('config');
    expect(resolved).toContain('image: timescale/timescaledb:2.22.0-pg17');
    expect(resolved).toContain('wal_level=logical');
  });

  it('wires the example connector to what msr consumes and signals', async () => {
    const connector = JSON.parse(await readFile(`${root}deploy/debezium/gis-connector.json`, 'utf8'));
    const text = await readFile(`${root}compose.yml`, 'utf8');
    const env = (name: string) => new RegExp(`${name}: '?([^'\\n]+)'?`).exec(text)?.[1];
    const config = loadConfig({
      DATABASE_URL: 'postgres://x@y/z',
      AUTH_MODE: 'none',
      KAFKA_BROKERS: env('KAFKA_BROKERS'),
      KAFKA_TOPIC_PATTERN: env('KAFKA_TOPIC_PATTERN'),
      SIGNAL_TOPIC: env('SIGNAL_TOPIC'),
    });
    expect(config.kafka.brokers).toEqual([connector['signal.kafka.bootstrap.servers']]);
    expect(config.kafka.signalTopic).toBe(connector['signal.kafka.topic']);
    expect(text).toMatch(new RegExp(`'create',\\s*'${config.kafka.signalTopic.replaceAll('.', '\\.')}'`));
    for (const table of connector['table.include.list'].split(',')) {
      expect(config.kafka.topicPattern.test(`${connector['topic.prefix']}.${table}`)).toBe(true);
      expect(
        SnapshotRequest.safeParse({ source: connector['topic.prefix'], collections: [table] }).success,
      ).toBe(true);
    }
    expect(connector).toMatchObject({ 'plugin.name': 'pgoutput', 'skipped.operations': 'none' });
  });
});
