import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientProcess } from '../../load/client-process.js';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, hoursAgo, insertHistory } from '../support/history.js';
import { connect, keyframeDone } from '../support/replay.js';
import { startMsr } from '../../scripts/services/msr.js';

// 5,000 idle sockets (in a process of their own) cost the server little each and keep nobody
// else out: /healthz answers, and a new client opens and plays a session.
const log = createLogger('silent');
const HOUR = 3_600_000;
const SOCKETS = 5_000;

describe('5,000 idle sockets', () => {
  let db: TestDatabase;
  let app: App;
  const start = hoursAgo(3);
  beforeAll(async () => {
    db = await createTestDatabase();
    await insertHistory(db.pool, generateHistory(13, start, 2 * HOUR, 500));
    app = await startMsr(db.url, { DB_POOL_SIZE: '2' }, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it('holds them with a small cost each, and still serves others', async () => {
    const before = process.memoryUsage();
    const idle = await ClientProcess.start({
      url: `ws://127.0.0.1:${app.port}/v1/replay`,
      mode: 'idle',
      count: SOCKETS,
      earliest: start,
      latest: start + HOUR,
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const during = process.memoryUsage();
      const perSocket = (key: 'rss' | 'heapUsed') => Math.round((during[key] - before[key]) / SOCKETS);
      console.log(
        `${SOCKETS} idle sockets opened in ${idle.ready.openMs} ms: server RSS +${perSocket('rss')} B, ` +
          `JS heap +${perSocket('heapUsed')} B per socket (no forced GC)`,
      );
      expect((await fetch(`http://127.0.0.1:${app.port}/healthz`)).status).toBe(200);
      const c = await connect(app.port);
      const keyframe = keyframeDone(c);
      await c.open({ from: start, to: start + HOUR, at: start + HOUR / 2 });
      await keyframe;
      expect(c.state.size).toBeGreaterThan(0);
      await c.close();
      c.disconnect();
      // A whole idle socket in well under 16 KiB of server memory (RSS includes uWS's buffers).
      expect(perSocket('rss')).toBeLessThan(16 * 1024);
    } finally {
      await idle.finish();
    }
  });
});
