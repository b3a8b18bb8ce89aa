import { describe, expect, it } from 'vitest';
import { JsonText, type ChangeText } from '../../server/replay/outgoing.js';
import { ReadAhead } from '../../server/replay/read-ahead.js';

// Times in µs; change.ts is in ms as on the wire (µs / 1000, possibly fractional).
const change = (us: number, id: string): ChangeText => ({
  table: 'city.vehicle',
  id,
  op: 'u',
  ts: us / 1000,
  state: new JsonText(JSON.stringify({ id })),
});
const window = (changes: ChangeText[], reached: number) => ({
  changes,
  reached,
  ids: changes.map((c) => c.id),
});

describe('read-ahead buffer', () => {
  it('hands out each change once, up to the target, and stops where the reads stop', () => {
    const ahead = new ReadAhead(true, 1_000_000);
    expect(ahead.covers(1_000_001)).toBe(false);
    ahead.append(
      window(
        [change(1_000_001, 'a'), change(1_500_123, 'b'), change(1_500_123, 'c'), change(2_999_999, 'd')],
        3_000_000,
      ),
    );
    expect(ahead.readFrom).toBe(3_000_000);
    expect(ahead.covers(2_000_000)).toBe(true);
    expect(ahead.coveredPast(2_000_000)).toBe(1_000_000);
    // Events at the target itself belong to the state at the target (state at T includes T).
    expect(ahead.take(1_500_123)).toEqual({
      changes: [change(1_000_001, 'a'), change(1_500_123, 'b'), change(1_500_123, 'c')],
      position: 1_500_123,
    });
    expect(ahead.take(1_600_000)).toEqual({ changes: [], position: 1_600_000 });
    // Past what was read: only as far as the reads reached.
    expect(ahead.take(9_000_000)).toEqual({ changes: [change(2_999_999, 'd')], position: 3_000_000 });
    ahead.append(window([change(3_000_001, 'e')], 4_000_000));
    expect(ahead.take(4_000_000)).toEqual({ changes: [change(3_000_001, 'e')], position: 4_000_000 });
  });

  it('in reverse hands out the changes after the target (the ones undone on the way back)', () => {
    const ahead = new ReadAhead(false, 5_000_000);
    ahead.append(window([change(5_000_000, 'a'), change(4_000_000, 'b'), change(3_000_000, 'c')], 2_000_000));
    expect(ahead.covers(2_500_000)).toBe(true);
    expect(ahead.covers(1_999_999)).toBe(false);
    expect(ahead.coveredPast(4_500_000)).toBe(2_500_000);
    // The state at 4 s still has the event at 4 s: only the one at 5 s is undone.
    expect(ahead.take(4_000_000)).toEqual({ changes: [change(5_000_000, 'a')], position: 4_000_000 });
    expect(ahead.take(3_999_999)).toEqual({ changes: [change(4_000_000, 'b')], position: 3_999_999 });
    expect(ahead.take(0)).toEqual({ changes: [change(3_000_000, 'c')], position: 2_000_000 });
  });

  it('recovers exact microseconds from wire times that are not whole milliseconds', () => {
    const ahead = new ReadAhead(true, 0);
    const us = 1_795_520_000_123_457; // a 2026 timestamp in µs: ts = 1795520000123.457 ms
    ahead.append(window([change(us, 'x')], us + 10));
    expect(ahead.take(us - 1).changes).toEqual([]);
    expect(ahead.take(us).changes).toEqual([change(us, 'x')]);
  });
});
