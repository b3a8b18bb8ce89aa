import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { freePort } from '../../../server/db/embedded.js';
import { createLogger } from '../../../server/logger.js';
import { startMsr } from '../../../scripts/services/msr.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { getJson } from '../../support/http.js';
import { until } from '../../support/wait.js';

// A broker that refuses every connection: the server runs and replays, /readyz says why ingest
// is not consuming, and a stop does not wait out kafkajs's retries (over 30 s of them).

describe('ingest with no broker to reach', () => {
  let db: TestDatabase;
  let app: App | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('says why in /readyz, serves the rest, and stops at once', async () => {
    app = await startMsr(
      db.url,
      { KAFKA_BROKERS: `127.0.0.1:${await freePort()}` },
      { log: createLogger('silent') },
    );
    const started = app;
    const check = await until('the ingest problem reported', async () => {
      const r = await getJson(started.port, '/readyz');
      return r.body.checks.kafka?.error ? { status: r.status, ...r.body.checks.kafka } : undefined;
    });
    expect(check).toMatchObject({ status: 503, ok: false });
    expect(check.error).toContain('cannot reach Kafka');
    expect((await getJson(started.port, '/api/v1/availability')).status).toBe(200);

    const stopping = Date.now();
    app = undefined;
    await started.stop();
    // Before, the stop waited for kafkajs to give up connecting: 36 s here.
    expect(Date.now() - stopping).toBeLessThan(10_000);
  });
});
