import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplayClient } from '@msr/protocol';
import type { AnyServerMessage } from '@msr/protocol/messages';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, insertHistory, referenceState, type HistoryEvent } from '../support/history.js';
import { asClientKeys, connect, keyframeDone } from '../support/replay.js';
import { startMsr } from '../../scripts/services/msr.js';

// Sessions reviewing the same stretch of history at nearby positions share the server's frame
// windows: fewer database reads than sessions, and every frame still equal to the raw fold.

const log = createLogger(process.env.TEST_LOG ?? 'silent');
const HOUR = 3_600_000;
const SESSIONS = 8;

describe('window cache shared by sessions at nearby positions', () => {
  let db: TestDatabase;
  const apps: App[] = [];
  const clients: ReplayClient[] = [];
  let events: HistoryEvent[];
  const start = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
  const end = start + HOUR;

  beforeAll(async () => {
    db = await createTestDatabase();
    events = generateHistory(23, start, HOUR - 1000, 3000);
    await insertHistory(db.pool, events);
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    for (const app of apps) await app.stop();
    await db?.drop();
  });

  const expected = (t: number) => asClientKeys(referenceState(events, t));
  const count = async (app: App, name: 'windowReads' | 'replayReads', label?: string) =>
    (await app.metrics[name].get()).values
      .filter((v) => label === undefined || (v.labels as { cache?: string }).cache === label)
      .reduce((n, v) => n + v.value, 0);

  /** SESSIONS sessions a second apart at 300x for 10 minutes of replay, each frame checked. */
  const playTogether = async (app: App) => {
    const at = start + 20 * 60_000;
    const failures: string[] = [];
    const sessions = await Promise.all(
      Array.from({ length: SESSIONS }, async (_, i) => {
        const c = await connect(app.port);
        clients.push(c);
        const keyframe = keyframeDone(c);
        await c.open({ from: start, to: end, at: at + i * 1000, speed: 300 });
        await keyframe;
        expect(new Map(c.state)).toEqual(expected(at + i * 1000));
        c.on((m: AnyServerMessage) => {
          if (m.type !== 'frame') return;
          if (!isDeepStrictEqual(new Map(c.state), expected(m.t)))
            failures.push(`session ${i}: frame ${m.seq} at ${m.t}`);
        });
        return c;
      }),
    );
    const until = at + 10 * 60_000;
    await Promise.all(
      sessions.map(async (c) => {
        const paused = c.waitFor((m) => m.type === 'clock' && !m.playing && m.t === until, 60_000);
        await c.play(until);
        await paused;
        expect(new Map(c.state)).toEqual(expected(until));
      }),
    );
    expect(failures).toEqual([]);
  };

  it('serves most windows from memory, every frame exact; without the cache each session reads', async () => {
    const shared = await startMsr(db.url, { MAX_ACTIVE_SESSIONS: '20' }, { log });
    apps.push(shared);
    const alone = await startMsr(
      db.url,
      { MAX_ACTIVE_SESSIONS: '20' },
      { log, replay: { windowCache: false } },
    );
    apps.push(alone);

    await playTogether(shared);
    const [hits, misses] = [
      await count(shared, 'windowReads', 'hit'),
      await count(shared, 'windowReads', 'miss'),
    ];
    await playTogether(alone);
    expect(await count(alone, 'windowReads')).toBe(0);

    // Keyframes count as replay reads on both; the difference is the windows read from memory.
    const [sharedReads, aloneReads] = [await count(shared, 'replayReads'), await count(alone, 'replayReads')];
    console.log(
      `window cache: ${SESSIONS} sessions, ${hits} windows from memory and ${misses} from the database; ` +
        `database reads ${sharedReads} with the cache, ${aloneReads} without`,
    );
    expect(hits).toBeGreaterThan(misses);
    // One keyframe read per session on each server; the rest, the windows read from the database,
    // are at most half of what the sessions read each on their own.
    expect(sharedReads - SESSIONS).toBeLessThanOrEqual((aloneReads - SESSIONS) / 2);
  });
});
