import { describe, expect, it } from 'vitest';
import { LiveClock } from '../../server/replay/live-clock.js';

// The live edge: the wall clock less the delay, or later where the capture has stored its source.

describe('LiveClock', () => {
  const now = Date.now();

  it('trails the wall clock by the delay while the capture has said nothing', () => {
    const clock = new LiveClock(1_000);
    expect(clock.edge(now)).toBe((now - 1_000) * 1000);
  });

  it('moves to what the capture stored, less a margin for commits stamped out of order', () => {
    const clock = new LiveClock(1_000);
    clock.stored((now - 50) * 1000);
    const edge = clock.edge(now);
    expect(edge).toBeGreaterThan((now - 1_000) * 1000);
    expect(edge).toBeLessThan((now - 50) * 1000);
    expect(edge).toBeGreaterThanOrEqual((now - 100) * 1000);
    // A capture far behind (a backlog) never holds the edge back behind the delay.
    expect(clock.edge(now + 5_000)).toBe((now + 4_000) * 1000);
  });

  it('never goes back, and tells its listeners only when it moves on', () => {
    const clock = new LiveClock(1_000);
    let told = 0;
    const unsubscribe = clock.onStored(() => (told += 1));
    clock.stored((now - 50) * 1000);
    const edge = clock.edge(now);
    clock.stored((now - 80) * 1000);
    clock.stored((now - 50) * 1000);
    expect(clock.edge(now)).toBe(edge);
    expect(told).toBe(1);
    clock.stored((now - 20) * 1000);
    expect(told).toBe(2);
    unsubscribe();
    clock.stored((now - 10) * 1000);
    expect(told).toBe(2);
  });
});
