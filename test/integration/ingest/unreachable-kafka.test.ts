import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../../server/app.js';
import { freePort } from '../../../server/db/embedded.js';
import { createLogger } from '../../../server/logger.js';
import { startMsr } from '../../../scripts/services/msr.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { getJson } from '../../support/http.js';
import { createSourceDatabase, startCaptureApp } from '../../support/source.js';
import { until } from '../../support/wait.js';

// A broker that refuses every connection: the server runs and replays, /readyz says why ingest
// is not consuming, and a stop does not wait out kafkajs's retries (over 30 s of them), neither
// the ingest's nor the built-in capture's sending to Kafka, which confirms nothing it did not send.

describe('ingest with no broker to reach', () => {
  let db: TestDatabase;
  let source: TestDatabase | undefined;
  let app: App | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    await source?.drop();
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

  it('reports a capture whose sends wait for Kafka, and stops it at once with the unsent change not confirmed', async () => {
    source = await createSourceDatabase();
    await source.pool.query(`
      create table parcel (id int primary key, v text);
      alter table parcel replica identity full;`);
    const capturing = await startCaptureApp(
      db,
      source,
      'tokafka',
      {
        CAPTURE_TO: 'kafka',
        CAPTURE_TABLES: 'public.parcel',
        KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
      },
      { capture: { kafkaStallMs: 1_000 } },
    );
    app = capturing;
    await until('streaming', async () => capturing.capture!.status.state === 'streaming');
    const { rows } = await source.pool.query<{ lsn: string }>(
      `insert into parcel values (1, 'unsent') returning pg_current_wal_lsn()::text as lsn`,
    );
    expect((await getJson(capturing.port, '/readyz')).body.checks.capture).toMatchObject({
      ok: true,
      state: 'streaming',
    });
    // The change is on its way and waits for Kafka: the capture streams, but it is not ready.
    const stalled = await until('the stalled send reported', async () => {
      const r = await getJson(capturing.port, '/readyz');
      return r.body.checks.capture?.ok === false ? { status: r.status, ...r.body.checks.capture } : undefined;
    });
    expect(stalled).toMatchObject({ status: 503, ok: false, state: 'streaming', code: 'KAFKA_UNAVAILABLE' });
    expect(stalled.error).toMatch(/captured changes have waited \d+ s for Kafka/);
    const stopping = Date.now();
    app = undefined;
    await capturing.stop();
    expect(Date.now() - stopping).toBeLessThan(10_000);
    const slot = await source.pool.query<{ unsent: boolean }>(
      `select confirmed_flush_lsn < $1::pg_lsn as unsent from pg_replication_slots where slot_name = $2`,
      [rows[0]!.lsn, capturing.config.capture!.slot],
    );
    // Sent again on the next start: the slot still holds it.
    expect(slot.rows).toEqual([{ unsent: true }]);
  });
});
