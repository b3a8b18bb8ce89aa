import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import {
  generateHistory,
  hoursAgo,
  insertHistory,
  prepareStorageFor,
  type HistoryEvent,
} from '../support/history.js';
import { getJson } from '../support/http.js';
import { startMsr } from '../../scripts/services/msr.js';

// The timeline's two REST reads against a random history and the test's own reading of it:
// GET /api/v1/activity (events per time bucket) and GET /api/v1/entities/{table}/{id}/history
// (one entity's changes in replay order, paged), on whichever dialect this project runs.

const HOUR = 3_600_000;
const log = createLogger('silent');

describe('timeline REST reads', () => {
  let db: TestDatabase;
  let app: App;
  const start = hoursAgo(6);
  let events: HistoryEvent[];

  /** Replay order as the server defines it: time, LSN (none first), insertion. */
  const replayOrder = (a: HistoryEvent, b: HistoryEvent) =>
    a.ts - b.ts || (a.lsn ?? -1) - (b.lsn ?? -1) || a.id! - b.id!;

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, start, start + 4 * HOUR);
    events = generateHistory(11, start, 3 * HOUR, 3000);
    // A second source with the same table: an entity is its table and id, whatever the source.
    const other = generateHistory(12, start + HOUR, HOUR, 200).map((e) => ({ ...e, source: 'other' }));
    events.push(...other);
    await insertHistory(db.pool, events);
    app = await startMsr(db.url, { DB_POOL_SIZE: '2' }, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('counts the events of each bucket, for all tables or some', async () => {
    const from = start + 7 * 60_000 + 0.5;
    const to = start + 2 * HOUR + 13 * 60_000;
    const buckets = 37;
    const width = (to - from) / buckets;
    for (const tables of [undefined, ['city.incident']]) {
      const query = `from=${from}&to=${to}&buckets=${buckets}${tables ? `&tables=${tables.join(',')}` : ''}`;
      const { status, body } = await getJson(app.port, `/api/v1/activity?${query}`);
      expect(status).toBe(200);
      // Each event in the bucket whose reported start it has reached, before the next one's.
      const starts: number[] = body.buckets.map((b: { t: number }) => b.t);
      expect(starts[0]).toBeCloseTo(from, 3);
      for (const [i, t] of starts.entries()) expect(Math.abs(t - (from + i * width))).toBeLessThan(0.001);
      const expected = new Array<number>(buckets).fill(0);
      for (const e of events) {
        if (e.ts < from || e.ts >= to || (tables && !tables.includes(`${e.schema}.${e.table}`))) continue;
        expected[starts.findLastIndex((t) => t <= e.ts)]!++;
      }
      expect(body.buckets.map((b: { events: number }) => b.events)).toEqual(expected);
      expect(body.total).toBe(expected.reduce((a, b) => a + b, 0));
      expect(body.total).toBeGreaterThan(100);
      expect(body).toMatchObject({ from, to, bucketMs: expect.closeTo(width, 3), tables: tables ?? null });
    }
    // By default: the available range, in 100 buckets.
    const whole = await getJson(app.port, '/api/v1/activity');
    expect(whole.body.buckets).toHaveLength(100);
    expect(whole.body.total).toBe(events.length);
  });

  it("pages through an entity's changes in replay order, with its table's truncates", async () => {
    const byEntity = new Map<string, number>();
    for (const e of events)
      if (e.op !== 't')
        byEntity.set(`${e.table}|${e.entityId}`, (byEntity.get(`${e.table}|${e.entityId}`) ?? 0) + 1);
    // The busiest vehicle, in both sources.
    const [key] = [...byEntity].filter(([k]) => k.startsWith('vehicle|')).sort((a, b) => b[1] - a[1])[0]!;
    const id = key.split('|')[1]!;
    const from = start + 20 * 60_000;
    const to = start + 2 * HOUR;
    const expected = events
      .filter(
        (e) => e.table === 'vehicle' && (e.entityId === id || e.op === 't') && e.ts >= from && e.ts <= to,
      )
      .sort(replayOrder);
    expect(expected.length).toBeGreaterThan(25);
    expect(new Set(expected.map((e) => e.source)).size).toBe(2);
    const seen: {
      ts: number;
      op: string;
      source: string;
      state: unknown;
      before: unknown;
      eventId: string;
    }[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const page = await getJson(
        app.port,
        `/api/v1/entities/city.vehicle/${id}/history?from=${from}&to=${to}&limit=10${after ? `&after=${after}` : ''}`,
      );
      expect(page.status).toBe(200);
      expect(page.body).toMatchObject({ table: 'city.vehicle', id, from, to });
      expect(page.body.changes.length).toBeLessThanOrEqual(10);
      seen.push(...page.body.changes);
      after = page.body.next;
      pages++;
    } while (after);
    expect(pages).toBe(Math.ceil(expected.length / 10));
    expect(seen.map((c) => [c.eventId, c.op, c.source, c.state, c.before])).toEqual(
      expected.map((e) => [String(e.id), e.op, e.source, e.after, e.before ?? null]),
    );
    for (const [i, c] of seen.entries()) expect(c.ts).toBeCloseTo(expected[i]!.ts, 3);
  });

  it('answers bad input with a code, and an unknown entity with no changes', async () => {
    const bad = [
      '/api/v1/activity?buckets=0',
      '/api/v1/activity?buckets=5000',
      '/api/v1/activity?from=yesterday',
      `/api/v1/activity?from=${start + HOUR}&to=${start}`,
      '/api/v1/activity?tables=vehicle',
      `/api/v1/activity?from=${start}&to=${start + 1}&buckets=2000`,
      '/api/v1/entities/vehicle/1/history',
      '/api/v1/entities/city.vehicle/1/history?limit=0',
      '/api/v1/entities/city.vehicle/1/history?limit=1001',
      '/api/v1/entities/city.vehicle/1/history?after=not-a-cursor',
      `/api/v1/entities/city.vehicle/1/history?from=${start + HOUR}&to=${start}`,
      '/api/v1/entities/city.vehicle/%E0%A4%A/history',
      // Finite, but past what the database's timestamps hold (it answered 500 INTERNAL).
      '/api/v1/activity?from=1e20&to=2e20',
      '/api/v1/activity?from=-1e20',
      '/api/v1/entities/city.vehicle/1/history?from=1e20&to=2e20',
      '/api/v1/entities/city.vehicle/1/history?from=-1e20',
    ];
    for (const path of bad) {
      expect(await getJson(app.port, path), path).toMatchObject({
        status: 400,
        body: { code: 'BAD_MESSAGE' },
      });
    }
    // The widest range asked for is answered: 4713 BC to year 275760.
    const widest = `from=${-210_866_803_200_000}&to=${8_640_000_000_000_000}`;
    expect((await getJson(app.port, `/api/v1/activity?${widest}`)).status).toBe(200);
    expect((await getJson(app.port, `/api/v1/entities/city.vehicle/1/history?${widest}`)).status).toBe(200);
    const unknown = await getJson(app.port, '/api/v1/entities/city.vehicle/no%2Fsuch%20one/history');
    expect(unknown).toMatchObject({ status: 200, body: { id: 'no/such one', next: null } });
    // The table's truncates clear every entity of it, known or not.
    expect(unknown.body.changes.every((c: { op: string }) => c.op === 't')).toBe(true);
  });
});
