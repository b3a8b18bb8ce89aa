import { describe, expect, it, vi, afterEach } from 'vitest';
import type { DeltaWindow } from '../../server/replay/deltas.js';
import { JsonText, type ChangeText } from '../../server/replay/outgoing.js';
import { WINDOW_CACHE_BOUNDS, WindowCache } from '../../server/replay/window-cache.js';

// Times are an hour before the clock (settled) in µs; each test builds its own "database".
const HOUR_US = 3_600_000_000;
const base = () => Date.now() * 1000 - HOUR_US;
/** The server's bounds with its default read-ahead lifetime. */
const serverCache = (onRead?: (hit: boolean) => void) =>
  new WindowCache({ ...WINDOW_CACHE_BOUNDS, ttlMs: 30_000 }, onRead);

/** A history of changes at the given offsets (µs after `t0`), one entity per change. */
function history(t0: number, offsets: number[]): { at: number; change: ChangeText; id: string }[] {
  return offsets.map((o, i) => ({
    at: t0 + o,
    id: String(1000 + i),
    change: {
      table: 'city.vehicle',
      id: String(i),
      op: 'u',
      ts: (t0 + o) / 1000,
      state: new JsonText(JSON.stringify({ n: i })),
    },
  }));
}

/** What a read of the database gives: the changes in (from, to], cut at `limit` after its time group. */
function databaseRead(
  rows: ReturnType<typeof history>,
  from: number,
  to: number,
  limit: number,
): DeltaWindow {
  let picked = rows.filter((r) => r.at > from && r.at <= to);
  let reached = to;
  if (picked.length >= limit) {
    const edge = picked[limit - 1]!.at;
    picked = picked.filter((r) => r.at <= edge);
    reached = edge;
  }
  return { changes: picked.map((r) => r.change), reached, ids: picked.map((r) => r.id) };
}

describe('WindowCache', () => {
  afterEach(() => vi.useRealTimers());

  it('serves a later session inside a window another read, with the same changes the database gives', async () => {
    const t0 = base();
    const rows = history(t0, [10, 20, 30, 40, 50, 60]);
    const hits: boolean[] = [];
    const cache = serverCache((hit) => hits.push(hit));
    let reads = 0;
    const read = (from: number, to: number) => async () => {
      reads += 1;
      return databaseRead(rows, from, to, 100);
    };
    const first = await cache.read(t0, t0 + 100, {}, 100, read(t0, t0 + 100));
    expect(first.changes).toHaveLength(6);
    const later = await cache.read(t0 + 25, t0 + 55, {}, 100, read(t0 + 25, t0 + 55));
    expect(reads).toBe(1);
    expect(hits).toEqual([false, true]);
    expect(later).toEqual(databaseRead(rows, t0 + 25, t0 + 55, 100));
    // Past what the window holds, the served window stops where it ends.
    const beyond = await cache.read(t0 + 55, t0 + 500, {}, 100, read(t0 + 55, t0 + 500));
    expect(beyond).toEqual({ changes: [rows[5]!.change], reached: t0 + 100, ids: ['1005'] });
  });

  it('cuts at the limit after the whole group of changes with the last time, as the database read does', async () => {
    const t0 = base();
    const rows = history(t0, [10, 20, 20, 20, 30, 40]);
    const cache = serverCache();
    await cache.read(t0, t0 + 100, {}, 100, async () => databaseRead(rows, t0, t0 + 100, 100));
    const served = await cache.read(t0 + 5, t0 + 100, {}, 2, async () => {
      throw new Error('not read from the database');
    });
    expect(served).toEqual(databaseRead(rows, t0 + 5, t0 + 100, 2));
    expect(served.changes).toHaveLength(4);
    expect(served.reached).toBe(t0 + 20);
  });

  it('shares only between equal filters (tables and entities in any order)', async () => {
    const t0 = base();
    const rows = history(t0, [10, 20]);
    const cache = serverCache();
    const read = vi.fn(async () => databaseRead(rows, t0, t0 + 100, 100));
    await cache.read(t0, t0 + 100, { tables: ['a.b', 'c.d'] }, 100, read);
    await cache.read(t0 + 1, t0 + 100, { tables: ['c.d', 'a.b'] }, 100, read);
    expect(read).toHaveBeenCalledTimes(1);
    await cache.read(t0 + 1, t0 + 100, { tables: ['c.d'] }, 100, read);
    await cache.read(t0 + 1, t0 + 100, { tables: ['a.b', 'c.d'], entities: ['1'] }, 100, read);
    expect(read).toHaveBeenCalledTimes(3);
  });

  it('lets a session wait for a read under way that holds its position (single flight)', async () => {
    const t0 = base();
    const rows = history(t0, [10, 20, 30]);
    const cache = serverCache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const read = vi.fn(async () => {
      await gate;
      return databaseRead(rows, t0, t0 + 100, 100);
    });
    const a = cache.read(t0, t0 + 100, {}, 100, read);
    const b = cache.read(t0 + 15, t0 + 100, {}, 100, read);
    release();
    expect((await a).changes).toHaveLength(3);
    expect(await b).toEqual(databaseRead(rows, t0 + 15, t0 + 100, 100));
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('forgets windows after their time to live, and never keeps one near the clock or a reverse one', async () => {
    vi.useFakeTimers({ now: Date.now() });
    const t0 = base();
    const rows = history(t0, [10, 20]);
    const cache = new WindowCache({ maxChanges: 100, ttlMs: 1_000, settledMs: 60_000 });
    const read = vi.fn(async () => databaseRead(rows, t0, t0 + 100, 100));
    await cache.read(t0, t0 + 100, {}, 100, read);
    vi.advanceTimersByTime(1_001);
    await cache.read(t0 + 1, t0 + 100, {}, 100, read);
    expect(read).toHaveBeenCalledTimes(2);

    const recent = Date.now() * 1000 - 30_000_000; // 30 s ago: rows may still commit there
    const fresh = history(recent, [10]);
    const readFresh = vi.fn(async () => databaseRead(fresh, recent, recent + 100, 100));
    await cache.read(recent, recent + 100, {}, 100, readFresh);
    await cache.read(recent + 1, recent + 100, {}, 100, readFresh);
    expect(readFresh).toHaveBeenCalledTimes(2);

    const reverse = vi.fn(async () => ({ changes: [], reached: t0, ids: [] }));
    await cache.read(t0 + 100, t0, {}, 100, reverse);
    await cache.read(t0 + 100, t0, {}, 100, reverse);
    expect(reverse).toHaveBeenCalledTimes(2);
  });

  it('holds at most maxChanges, dropping the oldest windows first', async () => {
    vi.useFakeTimers({ now: Date.now() });
    const t0 = base();
    const cache = new WindowCache({ maxChanges: 10, ttlMs: 60_000, settledMs: 60_000 });
    const offsets = Array.from({ length: 6 }, (_, i) => (i + 1) * 10);
    for (let w = 0; w < 4; w++) {
      const from = t0 + w * 1000;
      await cache.read(from, from + 100, {}, 100, async () =>
        databaseRead(history(from, offsets), from, from + 100, 100),
      );
      vi.advanceTimersByTime(10);
      expect(cache.size).toBeLessThanOrEqual(10);
    }
    expect(cache.size).toBe(6);
    // The newest window is still served; the first was dropped.
    const newest = t0 + 3000;
    await cache.read(newest + 1, newest + 100, {}, 100, async () => {
      throw new Error('not read from the database');
    });
    const oldest = vi.fn(async () => databaseRead(history(t0, offsets), t0, t0 + 100, 100));
    await cache.read(t0 + 1, t0 + 100, {}, 100, oldest);
    expect(oldest).toHaveBeenCalledTimes(1);
  });
});
