import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetFigures } from '../../load/bench.js';
import { naivePollRate, naiveScanState } from '../../load/naive-baseline.js';
import { htmlReport } from '../../load/report.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, insertHistory, referenceState, type HistoryEvent } from '../support/history.js';

// The benchmark's baselines must compute what they claim (else the ratios mean nothing), and the
// report must carry the figures it is given.

describe('benchmark tools', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = Date.UTC(2026, 10, 21, 6, 0, 0);

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(5, start, 3_600_000, 1500);
    await insertHistory(db.pool, events);
  });
  afterAll(() => db?.drop());

  it('the naive fold from the start gives the state at T, and polling reads every row once', async () => {
    for (const t of [start + 600_000, start + 3_000_000]) {
      const scan = await naiveScanState(db.pool, t);
      expect(scan.entities).toBe(referenceState(events, t).size);
      expect(scan.rows).toBe(events.filter((e) => e.ts <= t).length);
    }
    const poll = await naivePollRate(db.pool, start, 10, 200);
    expect(poll.rows).toBe(events.length);
    expect(poll.rowsPerSecond).toBeGreaterThan(0);
  });

  it('writes an HTML report with a chart per question and every figure', () => {
    const figures = {
      name: 'tiny city',
      seed: { events: 10, ms: 1, eventsPerSecond: 10_000 },
      aggregateRefreshMs: 3,
      stateAtT: { entities: 5, p50Ms: 41, p95Ms: 52 },
      naiveDistinctOn: { p50Ms: 4321, p95Ms: 5000 },
      rawCursor: { rows: 10, rowsPerSecond: 123_456 },
      naiveServer: {
        scanState: { p50Ms: 6543, entities: 5, rows: 10 },
        poll: { rows: 10, rowsPerSecond: 17_000, lastPageMs: 9 },
      },
      replay: {
        seek: {
          runs: 3,
          firstByteP50: 70,
          firstByteP95: 90,
          completeP50: 77,
          completeP95: 99,
          entities: 5,
          completeSamples: [60, 77, 99],
        },
        maxSpeed: { events: 10, seconds: 1, eventsPerSecond: 150_000 },
        concurrent: [
          { sessions: 1, openSeconds: 0, frames: 10, latenessP50: 4, latenessP99: 8, dbConnections: 3 },
          { sessions: 200, openSeconds: 8, frames: 9000, latenessP50: 1, latenessP99: 30, dbConnections: 10 },
        ],
        memory: { idleSocketKb: 2, playingSessionKb: 573 },
        slowClients: {
          clients: 20,
          seconds: 40,
          coalescedFrames: 1234,
          rssGrowthKbPerClient: 321,
          closedTooSlow: 20,
        },
      },
    } satisfies DatasetFigures;
    const html = htmlReport('2 cores', [figures], '| all | figures |');
    expect(html.match(/<svg/g)).toHaveLength(6);
    expect(html).toContain(
      'sent 1,234 coalesced frames, grew by 321 KiB per client, and closed 20 of them with 4008',
    );
    for (const shown of [
      '4,321 ms',
      '6,543 ms',
      '77 ms',
      '150,000 events/s',
      '17,000 events/s',
      '573 KiB',
      'tiny city',
      '| all | figures |',
    ]) {
      expect(html).toContain(shown);
    }
  });
});
