import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp, type App } from '../../../server/app.js';
import { loadConfig } from '../../../server/config.js';
import { backup } from '../../../server/recovery/backup.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import {
  generateHistory,
  hoursAgo,
  prepareStorageFor,
  referenceState,
  sqlState,
} from '../../support/history.js';
import { getJson } from '../../support/http.js';
import {
  brokers,
  createTopics,
  debeziumRecord,
  offsets,
  uniquePrefix,
  withProducer,
} from '../../support/kafka.js';
import { until } from '../../support/wait.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The ingest through the run's broker's SASL_SSL listener (a CA made for the run, SCRAM users made
// with Kafka's storage tool, a PLAIN user), and what /readyz says when TLS or SASL is wrong.
// Records are produced over the broker's plaintext listener; only MSR's clients use TLS.

const HOUR = 3_600_000;
const secure = () => inject('kafkaSecure');

/** A logger whose lines the test reads, to prove no secret reaches the log. */
function capturedLog(): { log: pino.Logger; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), text: () => text };
}

function secureEnv(
  db: TestDatabase,
  prefix: string,
  settings: Record<string, string>,
): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    AUTH_MODE: 'none',
    DEMO: 'false',
    PORT: '0',
    KAFKA_BROKERS: secure().brokers.join(','),
    KAFKA_GROUP_ID: `g-${prefix}`,
    KAFKA_TOPIC_PATTERN: `^${prefix}\\.`,
    KAFKA_SSL: 'true',
    KAFKA_SSL_CA_FILE: secure().caFile,
    ...settings,
  };
}

const user = (mechanism: 'scram-sha-512' | 'scram-sha-256' | 'plain') => ({
  KAFKA_SASL_MECHANISM: mechanism,
  KAFKA_SASL_USERNAME: secure().users[mechanism].username,
  KAFKA_SASL_PASSWORD: secure().users[mechanism].password,
});

describe('ingest from Kafka over SASL_SSL', () => {
  let db: TestDatabase;
  let app: App | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, hoursAgo(30), hoursAgo(0));
  });
  afterEach(async () => {
    await app?.stop();
    app = undefined;
  });
  afterAll(() => db?.drop());

  it('stores every change through TLS with SCRAM-SHA-512, and the backup reads its offsets through it too', async () => {
    const prefix = uniquePrefix('tls');
    await createTopics([{ topic: `${prefix}.city.vehicle`, partitions: 2 }]);
    const events = generateHistory(31, hoursAgo(30), 2 * HOUR, 600)
      .filter((e) => e.table === 'vehicle')
      .map((e, i) => ({ ...e, source: prefix, lsn: 9000 + i }));
    await withProducer((producer) =>
      producer.send({
        topic: `${prefix}.city.vehicle`,
        messages: events.map((e) => debeziumRecord(e, prefix)).map(({ key, value }) => ({ key, value })),
      }),
    );
    const { log, text } = capturedLog();
    const env = secureEnv(db, prefix, user('scram-sha-512'));
    app = await createApp(loadConfig(env), { log, ingest: { topicRefreshMs: 500 } });
    await until('all events stored', async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        'select count(*)::int as n from msr.cdc_event where source = $1',
        [prefix],
      );
      return rows[0]!.n === events.length;
    });
    const t = events.at(-1)!.ts;
    expect(await sqlState(db.pool, t)).toEqual(referenceState(events, t));
    expect((await getJson(app.port, '/readyz')).body.checks.kafka).toMatchObject({ ok: true });
    await until('offsets committed', async () => {
      const now = await offsets(`g-${prefix}`, `${prefix}.city.vehicle`);
      return JSON.stringify(now.committed) === JSON.stringify(now.high);
    });

    const dir = await mkdtemp(path.join(tmpdir(), 'msr-tls-backup-'));
    try {
      const metadata = await backup(db.pool, db.url, loadConfig(env), dir);
      const high = (await offsets(`g-${prefix}`, `${prefix}.city.vehicle`)).high;
      expect(Object.fromEntries(metadata.kafka!.offsets.map((o) => [o.partition, o.offset]))).toEqual(high);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(text()).not.toContain(secure().users['scram-sha-512'].password);
  });

  it('connects with SCRAM-SHA-256 and with PLAIN as well', async () => {
    for (const mechanism of ['scram-sha-256', 'plain'] as const) {
      const prefix = uniquePrefix(mechanism.replace(/-/g, ''));
      await createTopics([{ topic: `${prefix}.city.vehicle`, partitions: 1 }]);
      app = await createApp(loadConfig(secureEnv(db, prefix, user(mechanism))), {
        log: capturedLog().log,
        ingest: { topicRefreshMs: 500 },
      });
      await until(`${mechanism} ingest consuming`, async () => {
        const kafka = (await getJson(app!.port, '/readyz')).body.checks.kafka;
        return kafka.ok === true && kafka.topics?.includes(`${prefix}.city.vehicle`);
      });
      await app.stop();
      app = undefined;
    }
  });

  const failures = [
    {
      name: 'a wrong password',
      settings: () => ({ ...user('scram-sha-512'), KAFKA_SASL_PASSWORD: 'not-the-password-1234' }),
      says: 'SASL authentication failed',
    },
    {
      name: 'a CA that did not sign the broker',
      settings: () => ({ ...user('scram-sha-512'), KAFKA_SSL_CA_FILE: secure().otherCaFile }),
      says: 'certificate not trusted',
    },
    {
      name: 'TLS to the plaintext listener',
      settings: () => ({ ...user('scram-sha-512'), KAFKA_BROKERS: brokers().join(',') }),
      says: 'TLS handshake failed',
    },
  ];
  for (const failure of failures) {
    it(`names ${failure.name} in /readyz, keeps serving, and logs no secret`, async () => {
      const prefix = uniquePrefix('bad');
      const settings = failure.settings();
      const { log, text } = capturedLog();
      app = await createApp(loadConfig(secureEnv(db, prefix, settings)), { log });
      const kafka = await until(failure.says, async () => {
        const check = (await getJson(app!.port, '/readyz')).body.checks.kafka;
        return (
          check.ok === false && typeof check.error === 'string' && check.error.includes(failure.says) && check
        );
      });
      expect(kafka.error).not.toContain(settings.KAFKA_SASL_PASSWORD);
      expect((await getJson(app.port, '/healthz')).status).toBe(200);
      expect(text()).not.toContain(settings.KAFKA_SASL_PASSWORD);
    });
  }
});
