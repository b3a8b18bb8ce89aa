import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetFigures } from '../../load/bench.js';
import { naivePollRate, naiveScanState } from '../../load/naive-baseline.js';
import { kafkaStateAt, loadTopics } from '../../load/kafka-baseline.js';
import { htmlReport } from '../../load/report.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { brokers, uniquePrefix } from '../support/kafka.js';
import {
  hoursAgo,
  generateHistory,
  insertHistory,
  referenceState,
  type HistoryEvent,
} from '../support/history.js';

// The benchmark's baselines must compute what they claim (else the ratios mean nothing), and the
// report must carry the figures it is given.

describe('benchmark tools', () => {
  let db: TestDatabase;
  let events: HistoryEvent[];
  const start = hoursAgo(30);

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

  it('the Kafka baseline folds the change topics up to T into the same state', async () => {
    const prefix = uniquePrefix('bench');
    const loaded = await loadTopics(db.pool, brokers(), `${prefix}.`);
    expect(loaded.records).toBe(events.length);
    expect(loaded.topics).toEqual([`${prefix}.test.city.incident`, `${prefix}.test.city.vehicle`]);
    for (const t of [start + 600_000, start + 3_000_000, start + 3_600_000]) {
      const fold = await kafkaStateAt(brokers(), loaded.topics, t);
      const expected = new Map(
        [...referenceState(events, t)].map(([key, after]) => {
          const [source, schema, table, id] = key.split('|');
          return [`${prefix}.${source}.${schema}.${table}|${id}`, after];
        }),
      );
      expect(fold.records).toBe(events.filter((e) => e.ts <= t).length);
      expect(fold.entities).toBe(expected.size);
      expect(fold.state).toEqual(expected);
    }
  });

  it('writes an HTML report with a chart per question and every figure', () => {
    const figures = {
      name: 'tiny city',
      dialect: 'timescaledb',
      seed: { events: 10, ms: 1, eventsPerSecond: 10_000 },
      aggregateRefreshMs: 3,
      stateAtT: { entities: 5, p50Ms: 41, p95Ms: 52 },
      naiveDistinctOn: { p50Ms: 4321, p95Ms: 5000 },
      rawCursor: { rows: 10, rowsPerSecond: 123_456 },
      naiveServer: {
        scanState: { p50Ms: 6543, entities: 5, rows: 10 },
        poll: { rows: 10, rowsPerSecond: 17_000, lastPageMs: 9 },
      },
      kafka: {
        records: 10,
        megabytes: 1,
        produceMs: 5,
        p50Ms: 9876,
        foldP50Ms: 8765,
        recordsP50: 7,
        recordsPerSecond: 54_321,
        entities: [{ ours: 5, kafka: 5 }],
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
          {
            sessions: 1,
            openSeconds: 0,
            frames: 10,
            latenessP50: 4,
            latenessP99: 8,
            dbConnections: 3,
            serverCpuPct: 2,
            databaseCpuPct: 1,
            clientsCpuPct: 1,
          },
          {
            sessions: 200,
            openSeconds: 8,
            frames: 9000,
            latenessP50: 1,
            latenessP99: 30,
            dbConnections: 10,
            serverCpuPct: 71,
            databaseCpuPct: 12,
            clientsCpuPct: 44,
          },
        ],
        profile500: {
          latenessP50: 20,
          latenessP99: 90,
          hot: [
            { name: '(garbage collector)', selfPct: 12.5 },
            { name: 'encode (protocol/codec.ts:10)', selfPct: 8.25 },
          ],
        },
        memory: { idleSocketKb: 2, playingSessionKb: 573, playingSessionHeapKb: 97 },
        slowClients: {
          clients: 20,
          seconds: 40,
          coalescedFrames: 1234,
          rssGrowthKbPerClient: 321,
          heapGrowthKbPerClient: 123,
          rssAfterCloseKbPerClient: 12,
          closedTooSlow: 20,
        },
      },
      backup: {
        events: 2_000_000,
        megabytes: 180.5,
        mbPerMillionEvents: 90.3,
        backupMs: 11_000,
        restoreMs: 23_456,
        restoredEvents: 2_000_000,
        statesChecked: 3,
        statesEqual: 3,
      },
    } satisfies DatasetFigures;
    const html = htmlReport('2 cores', [figures], '| all | figures |');
    expect(html.match(/<svg/g)).toHaveLength(8);
    expect(html).toContain(
      'sent 1,234 coalesced frames, grew by 321 KiB per client (RSS at the peak, after GC), and closed 20 of them with 4008',
    );
    for (const shown of [
      '4,321 ms',
      '6,543 ms',
      '77 ms',
      '150,000 events/s',
      '17,000 events/s',
      '573 KiB',
      '97 KiB',
      '9,876 ms',
      '54,321 events/s',
      '71 %',
      '8.25 %',
      'encode (protocol/codec.ts:10)',
      'tiny city (timescaledb)',
      'Backup: 180.5 MB (90.3 MB per million events) in 11,000 ms; restored in 23,456 ms, 2,000,000 events, state equal at 3 of 3 times',
      '| all | figures |',
    ]) {
      expect(html).toContain(shown);
    }
  });
});
