import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FrameMessage } from '../../protocol/messages.js';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { asClientKeys, connect, keyframeDone } from '../support/replay.js';
import { referenceState, type HistoryEvent } from '../support/history.js';

// Live-follow: a session whose range reaches past now keeps streaming new rows, each exactly once,
// and rows that arrive after the session passed their time are corrected to the exact state.

const log = createLogger('silent');

describe('live-follow', () => {
  let db: TestDatabase;
  let app: App;
  const events: HistoryEvent[] = [];
  let nextId = 1;

  const write = async (
    ts: number,
    entityId: string,
    op: HistoryEvent['op'],
    after: Record<string, unknown> | null,
  ) => {
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, after)
       values (to_timestamp($1 / 1000.0), 'live', 'ops', 'unit', $2, $3, $4) returning id`,
      [ts, entityId, op, after],
    );
    events.push({
      id: Number(rows[0]!.id),
      ts,
      source: 'live',
      schema: 'ops',
      table: 'unit',
      entityId,
      op,
      after,
      lsn: null,
      offset: null,
    });
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    const start = Date.now() - 60_000;
    for (let i = 0; i < 20; i++) await write(start + i * 1000, String(i % 5), 'u', { v: nextId++ });
    app = await createApp(
      loadConfig({ DATABASE_URL: db.url, AUTH_MODE: 'none', PORT: '0', DB_POOL_SIZE: '3' }),
      { log },
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
});
