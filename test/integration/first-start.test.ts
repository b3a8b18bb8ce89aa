import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { getJson } from '../support/http.js';
import { until } from '../support/wait.js';
import { startMsr } from '../../scripts/services/msr.js';

// A newcomer's first start: an empty database, the demo seeding its history in the background
// and the bootstrap maintenance run. Both need the event table's locks; maintenance waits for the
// seed, so the start logs no error and turns ready with the snapshot built over the seeded data.
describe('a first start on an empty database with the demo', () => {
  let db: TestDatabase;
  let app: App | undefined;
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('logs nothing at error or fatal, and builds the snapshot once the seed is done', async () => {
    db = await createTestDatabase();
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    app = await startMsr(
      db.url,
      { DEMO: 'true', DB_POOL_SIZE: '4' }, // Three hours of demo history take about 7 s to seed here.
      { log, demoHistoryMs: 3 * 3_600_000, maintenance: { retryMs: 600_000 } },
    );
    const ready = await until(
      'ready with a snapshot',
      async () => {
        const r = await getJson(app!.port, '/readyz');
        // The snapshot's pointer is visible before the run has dropped old events and logged.
        const logged = lines.some((l) => l.msg === 'maintenance done');
        return r.status === 200 && r.body.checks.snapshot.lastRefresh && logged ? r : undefined;
      },
      90_000,
    );
    expect(ready.body.checks.demo).toEqual({ ok: true });
    const seeded = lines.findIndex((l) => /seeded/i.test(l.msg));
    const started = lines.findIndex((l) => l.msg === 'maintenance starting');
    const done = lines.findIndex((l) => l.msg === 'maintenance done');
    expect(seeded, 'the seed is logged').toBeGreaterThanOrEqual(0);
    expect(started, 'maintenance started after the seed').toBeGreaterThan(seeded);
    expect(done, 'maintenance ran').toBeGreaterThan(started);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    // Maintenance ran over the whole seeded history: every seeded event is still there.
    const { rows } = await db.pool.query(`select count(*)::int as n from msr.cdc_event`);
    expect(rows[0].n).toBeGreaterThan(1000);

    // The live demo goes through the real pipeline: its source tables, streamed by the built-in
    // capture (events with the source's LSN and transaction id), continuing the seeded history.
    await until(
      'the demo captured',
      async () => (await getJson(app!.port, '/readyz')).body.checks.capture.state === 'streaming',
    );
    const captured = await until('live movements captured', async () => {
      const { rows: r } = await db.pool.query(
        `select count(*) filter (where op = 'u' and tx_id is not null)::int as moves,
                count(*) filter (where op = 'r' and lsn is not null)::int as reads
           from msr.cdc_event where source = 'demo'`,
      );
      return r[0].moves > 0 ? r[0] : undefined;
    });
    const vehicles = await db.pool.query(`select count(*)::int as n from city.vehicle`);
    expect(captured.reads).toBeGreaterThanOrEqual(vehicles.rows[0].n);
    expect(vehicles.rows[0].n).toBeGreaterThan(1900);
    const state = await db.pool.query(
      `select count(*)::int as n from msr.entity_states_at(now(), array['city.vehicle']) where source = 'demo'`,
    );
    expect(state.rows[0].n).toBe(vehicles.rows[0].n);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
