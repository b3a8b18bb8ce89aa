import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Refusals } from '../../server/ingest/refusals.js';
import type { FailedRecord } from '../../server/ingest/change.js';
import { Metrics } from '../../server/metrics.js';

const refused = (
  topic: string,
  offset: number,
  reason: FailedRecord['reason'] = 'MISSING_KEY',
): FailedRecord => ({
  topic,
  partition: 0,
  offset: String(offset),
  key: null,
  value: null,
  reason,
  detail: `why ${offset}`,
});

describe('Refusals', () => {
  it('logs once per table and reason per minute with a count, and counts every record', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const metrics = new Metrics();
    const refusals = new Refusals(log, metrics);
    const t0 = 1_000_000;
    refusals.note([refused('s.a.t', 1), refused('s.a.t', 2), refused('s.a.u', 3)], t0);
    refusals.note([refused('s.a.t', 4), refused('s.a.t', 5, 'BAD_VALUE')], t0 + 30_000);
    expect(lines.map((l) => [l.topic, l.reason, l.records])).toEqual([
      ['s.a.t', 'MISSING_KEY', 1],
      ['s.a.u', 'MISSING_KEY', 1],
      ['s.a.t', 'BAD_VALUE', 1],
    ]);
    // A minute after the first line: one more line for s.a.t, with the records since that line.
    refusals.note([refused('s.a.t', 6)], t0 + 61_000);
    expect(lines.at(-1)).toMatchObject({ topic: 's.a.t', reason: 'MISSING_KEY', records: 3 });
    expect(lines.at(-1)!.example).toEqual({ offset: '6', detail: 'why 6' });
    const text = await metrics.registry.metrics();
    expect(text).toContain('msr_ingest_errors_total{topic="s.a.t",reason="MISSING_KEY"} 4');
    expect(refusals.recent(t0 + 61_000)).toEqual([
      's.a.t: 4 records refused (MISSING_KEY): why 6',
      's.a.u: 1 records refused (MISSING_KEY): why 3',
      's.a.t: 1 records refused (BAD_VALUE): why 5',
    ]);
    // Ten minutes later, nothing is recent any more.
    expect(refusals.recent(t0 + 61_000 + 600_000)).toEqual([]);
  });
});
