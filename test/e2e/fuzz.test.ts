import { pack } from 'msgpackr';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { generateHistory, hoursAgo, insertHistory, random } from '../support/history.js';
import { connect, keyframeDone } from '../support/replay.js';
import { startMsr } from '../../scripts/services/msr.js';

// Hostile input on both subprotocols while a session plays: random bytes, wrong shapes, deep
// nesting, msgpack length lies, oversize messages. Every one gets an error or a close, never a
// crash; the playing session stays on time and the server's memory stays where it was.
const log = createLogger('silent');
const HOUR = 3_600_000;
const MESSAGES = 2_400;

/** One hostile message from a seeded generator (deterministic, so a failure can be replayed). */
function hostile(rnd: () => number, msgpack: boolean): Buffer | string {
  const pick = Math.floor(rnd() * 10);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const encode = (value: unknown) => (msgpack ? pack(value) : JSON.stringify(value));
  switch (pick) {
    case 0:
      return bytes(1 + Math.floor(rnd() * 64));
    case 1:
      return encode({ type: 'open', from: 'yesterday', to: [], rid: rnd() });
    case 2:
      return encode({ type: 'seek', t: Number.MAX_SAFE_INTEGER * (rnd() - 0.5), rid: 1 });
    case 3: {
      let nested: unknown = 1;
      for (let i = 0; i < 2_000; i++) nested = [nested];
      return msgpack ? encode({ type: 'open', deep: 1 }) : `{"type":"open","x":${JSON.stringify(nested)}}`;
    }
    case 4:
      // msgpack str32 header claiming 4 GiB, followed by a few bytes.
      return msgpack ? Buffer.concat([Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), bytes(8)]) : '{"type":';
    case 5:
      return encode({ type: 'x'.repeat(1 + Math.floor(rnd() * 100_000)), rid: 'r'.repeat(100) });
    case 6:
      return encode({ type: 'speed', speed: rnd() < 0.5 ? -0 : 1e308 });
    case 7:
      return encode([{ type: 'play' }]);
    case 8:
      // Over the 256 KiB message limit, under the 1 MiB drop.
      return encode({ type: 'pause', pad: 'p'.repeat(300_000) });
    default:
      return encode({ type: 'attach', session: 'not-a-session', resume: bytes(4).toString('hex') });
  }
}

describe('fuzzing the replay socket', () => {
  let db: TestDatabase;
  let app: App;
  const start = hoursAgo(3);
  beforeAll(async () => {
    db = await createTestDatabase();
    await insertHistory(db.pool, generateHistory(8, start, HOUR, 20_000));
    app = await startMsr(db.url, { DB_POOL_SIZE: '4' }, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  it(`answers ${MESSAGES} hostile messages without crashing, slowing a playing session or growing`, async () => {
    const player = await connect(app.port);
    const keyframe = keyframeDone(player);
    await player.open({ from: start, to: start + HOUR, at: start + 60_000 });
    await keyframe;
    const arrivals: number[] = [];
    player.on((m) => {
      if (m.type === 'frame') arrivals.push(Date.now());
    });
    await player.play();
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;

    const rnd = random(20261129);
    let answered = 0;
    let closedByServer = 0;
    for (let round = 0; round < MESSAGES / 100; round++) {
      const msgpack = round % 2 === 1;
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${app.port}/v1/replay`, [
          msgpack ? 'msr.v1.msgpack' : 'msr.v1.json',
        ]);
        ws.on('message', () => answered++);
        ws.on('close', () => {
          closedByServer++;
          resolve();
        });
        ws.on('error', () => undefined);
        ws.on('open', () => {
          for (let i = 0; i < 100; i++) ws.send(hostile(rnd, msgpack));
          // Give the server time to answer, then leave.
          setTimeout(() => ws.close(), 300);
        });
      });
    }
    await player.pause();
    global.gc?.();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;

    // Still serving, the session still there, errors answered.
    expect((await fetch(`http://127.0.0.1:${app.port}/healthz`)).status).toBe(200);
    expect(app.sessions.local(player.session!)).toBeDefined();
    expect(answered).toBeGreaterThan(MESSAGES / 4);
    expect(closedByServer).toBe(MESSAGES / 100);
    const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
    const longest = Math.max(...gaps);
    console.log(
      `fuzz (${process.env.MSR_TEST_DIALECT}): ${MESSAGES} messages, ${answered} replies; ` +
        `playing session: ${arrivals.length} frames, longest pause ${longest} ms; heap growth ${Math.round(heapGrowth / 1024)} KiB`,
    );
    expect(arrivals.length).toBeGreaterThan(20);
    expect(longest).toBeLessThan(1_000);
    expect(heapGrowth).toBeLessThan(64 * 1024 * 1024);
    player.disconnect();
  });
});
