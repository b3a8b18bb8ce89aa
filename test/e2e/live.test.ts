import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FrameMessage } from '@msr/protocol/messages';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import type { ReplayClient } from '@msr/protocol';
import { asClientKeys, connect, keyframeDone } from '../support/replay.js';
import { until } from '../support/wait.js';
import { referenceState, writeLiveChange, type HistoryEvent } from '../support/history.js';
import { startMsr } from '../../scripts/services/msr.js';

// Live-follow: a session whose range reaches past now keeps streaming new rows, each exactly once,
// and rows that arrive after the session passed their time are corrected to the exact state.

const log = createLogger('silent');

describe.each([
  { feed: 'the live tail', liveTail: true },
  { feed: 'its own reads', liveTail: false },
])('live-follow, each session fed by $feed', ({ liveTail }) => {
  let db: TestDatabase;
  let app: App;
  const events: HistoryEvent[] = [];
  let nextId = 1;

  const write = (
    ts: number,
    entityId: string,
    op: HistoryEvent['op'],
    after: Record<string, unknown> | null,
  ) => writeLiveChange(db.pool, events, ts, entityId, op, after);

  beforeAll(async () => {
    db = await createTestDatabase();
    const start = Date.now() - 60_000;
    for (let i = 0; i < 20; i++) await write(start + i * 1000, String(i % 5), 'u', { v: nextId++ });
    app = await startMsr(
      db.url,
      { DB_POOL_SIZE: '3', MAX_ACTIVE_SESSIONS: '40' },
      { log, replay: { liveTail } },
    );
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('streams new rows once, then corrects rows that arrive late', async () => {
    const c = await connect(app.port);
    const from = Date.now() - 50_000;
    const keyframe = keyframeDone(c);
    await c.open({ from, to: Date.now() + 3_600_000, at: from, speed: 'max' });
    await keyframe;
    const frames: FrameMessage[] = [];
    c.on((m) => m.type === 'frame' && frames.push(m));
    await c.play();
    // Catches up with the stored rows, then waits at the live edge.
    const deadline = Date.now() + 10_000;
    while (c.t < Date.now() - 3_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // At full speed on the edge the session looks again a tick later, it does not spin: the event
    // loop (this process runs the server) stays mostly idle.
    const busy = performance.eventLoopUtilization();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(performance.eventLoopUtilization(busy).utilization).toBeLessThan(0.5);

    for (let i = 0; i < 5; i++) {
      await write(Date.now(), `new-${i}`, 'c', { v: nextId++ });
      await new Promise((r) => setTimeout(r, 150));
    }
    // A late row: its time is already behind the session's position when it is written.
    const lateTs = c.t - 2_000;
    await write(lateTs, '2', 'u', { v: 'late' });
    await new Promise((r) => setTimeout(r, 3_000));

    const sent = frames.flatMap((f) => f.changes);
    for (let i = 0; i < 5; i++) {
      expect(
        sent.filter((ch) => ch.id === `new-${i}`),
        `new-${i}`,
      ).toHaveLength(1);
    }
    const correction = sent.filter(
      (ch) => ch.id === '2' && (ch.state as { v?: unknown } | undefined)?.v === 'late',
    );
    expect(correction).toHaveLength(1);
    expect(c.state).toEqual(asClientKeys(referenceState(events, c.t)));
    expect(c.state.get('ops.unit|2')).toEqual({ v: 'late' });
    c.disconnect();
  });

  it.runIf(liveTail)(
    'feeds 20 live sessions from one read of the tail per interval, each row once, late rows corrected',
    async () => {
      const sessions = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const c = await connect(app.port);
          const keyframe = keyframeDone(c);
          await c.open({
            from: Date.now() - 30_000,
            to: Date.now() + 3_600_000,
            at: Date.now() - 1_500,
            speed: 1,
            // Half of them follow one entity: the tail filters for each session.
            ...(i % 2 === 1 ? { entities: ['3'] } : {}),
          });
          await keyframe;
          await c.play();
          return c;
        }),
      );
      const counter = async (name: 'liveTailReads' | 'liveEdgeChecks' | 'replayReads') =>
        (await app.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);
      // Every session settles on the tail: its own window reads and late-row queries stop.
      await until(
        'the sessions are on the tail',
        async () => {
          const [reads, checks] = [await counter('replayReads'), await counter('liveEdgeChecks')];
          await new Promise((r) => setTimeout(r, 1_000));
          return reads === (await counter('replayReads')) && checks === (await counter('liveEdgeChecks'))
            ? true
            : undefined;
        },
        20_000,
      );
      const lateRows = async () =>
        (await app.metrics.liveTailRows.get()).values.find((v) => v.labels.read === 'late')?.value ?? 0;
      const before = {
        lateRows: await lateRows(),
        tail: await counter('liveTailReads'),
        reads: await counter('replayReads'),
        checks: await counter('liveEdgeChecks'),
      };
      const sent = sessions.map(() => [] as string[]);
      sessions.forEach((c, i) =>
        c.on(
          (m) =>
            m.type === 'frame' &&
            sent[i]!.push(...m.changes.map((ch) => `${ch.id}=${JSON.stringify(ch.state ?? null)}`)),
        ),
      );
      const started = Date.now();
      for (let i = 0; i < 5; i++) {
        await write(Date.now(), `tail-${i}`, 'c', { v: `tail-${i}` });
        await new Promise((r) => setTimeout(r, 300));
      }
      // Late for every session: its time is already behind all of them.
      await write(Math.min(...sessions.map((c) => c.t)) - 1_000, '3', 'u', { v: 'late-3' });
      await new Promise((r) => setTimeout(r, 3_000));
      const seconds = (Date.now() - started) / 1000;
      const tailReads = (await counter('liveTailReads')) - before.tail;
      // One window read per 100 ms and a late check per 500 ms, whatever the number of sessions.
      expect(tailReads).toBeGreaterThan(seconds * 5);
      expect(tailReads).toBeLessThanOrEqual(Math.ceil(seconds * 12) + 2);
      expect((await counter('replayReads')) - before.reads).toBe(0);
      expect((await counter('liveEdgeChecks')) - before.checks).toBe(0);
      // Late checks ask only for ids the tail has not read: the late row, not the rows of the
      // last 30 s again at every check (35 or more here).
      const late = (await lateRows()) - before.lateRows;
      expect(late).toBeGreaterThanOrEqual(1);
      expect(late).toBeLessThan(5);

      const reference = (c: ReplayClient, i: number) => {
        const all = referenceState(events, c.t);
        return asClientKeys(i % 2 === 1 ? new Map([...all].filter(([k]) => k.endsWith('|3'))) : all);
      };
      sessions.forEach((c, i) => {
        const mine = sent[i]!;
        if (i % 2 === 0) {
          for (const n of [0, 1, 2, 3, 4])
            expect(
              mine.filter((x) => x.startsWith(`tail-${n}=`)),
              `session ${i}`,
            ).toHaveLength(1);
        } else
          expect(
            mine.filter((x) => x.startsWith('tail-')),
            `session ${i}`,
          ).toEqual([]);
        expect(
          mine.filter((x) => x === '3={"v":"late-3"}'),
          `session ${i}`,
        ).toHaveLength(1);
        expect(c.state, `session ${i}`).toEqual(reference(c, i));
        expect(c.state.get('ops.unit|3')).toEqual({ v: 'late-3' });
      });
      for (const c of sessions) c.disconnect();
    },
  );
});

describe.each([{ delayMs: 1_000 }, { delayMs: 200 }])('LIVE_DELAY_MS=$delayMs', ({ delayMs }) => {
  let db: TestDatabase;
  let app: App;

  beforeAll(async () => {
    db = await createTestDatabase();
    await writeLiveChange(db.pool, [], Date.now() - 10_000, 'old', 'c', { v: 0 });
    app = await startMsr(db.url, { DB_POOL_SIZE: '3', LIVE_DELAY_MS: String(delayMs) }, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('shows a new row once the edge, that far behind the clock, passes its time', async () => {
    const c = await connect(app.port);
    const keyframe = keyframeDone(c);
    await c.open({ from: Date.now() - 5_000, to: Date.now() + 3_600_000, at: Date.now(), speed: 'max' });
    await keyframe;
    await c.play();
    const lateness: number[] = [];
    c.on((m) => {
      if (m.type !== 'frame') return;
      for (const ch of m.changes) if (ch.id.startsWith('new-')) lateness.push(Date.now() - ch.ts);
    });
    for (let i = 0; i < 3; i++) {
      await writeLiveChange(db.pool, [], Date.now(), `new-${i}`, 'c', { v: i });
      await new Promise((r) => setTimeout(r, 300));
    }
    await until('the rows arrived', async () => (lateness.length === 3 ? true : undefined), 10_000);
    // Never before the edge passes the row's time; the upper bound only tells the setting took.
    for (const ms of lateness) {
      expect(ms).toBeGreaterThanOrEqual(delayMs);
      expect(ms).toBeLessThan(delayMs + 800);
    }
    c.disconnect();
  });
});
