import { pack, unpack } from 'msgpackr';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBPROTOCOLS, isMsgpack, type Subprotocol } from '@msr/protocol/wire';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { hoursAgo, prepareStorageFor } from '../support/history.js';
import { startMsr } from '../../scripts/services/msr.js';

// jsonb holds any number exactly, and a client in another language can read every digit of a
// bigint column past 2^53 from JSON. What the server sends (keyframes, frames forward and
// backward, the entity history) keeps the stored digits: JSON as the stored text, msgpack as a
// 64-bit integer. Seen here as the raw bytes on the wire, before any JavaScript parser rounds them.

const log = createLogger('silent');
const BIG = ['9007199254740993', '9007199254740995', '9223372036854775807'];

describe('numbers past 2^53 in replayed states', () => {
  let db: TestDatabase;
  let app: App;
  const t0 = hoursAgo(2);

  beforeAll(async () => {
    db = await createTestDatabase();
    await prepareStorageFor(db.pool, t0, t0 + 60_000);
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    // Entity 0 first: sessions may start no earlier than the first stored event.
    await db.pool.query(
      `insert into msr.cdc_event (event_timestamp, source, table_schema, table_name, entity_id, op, before, after)
       values ($3, 'exact', 'ledger', 'account', '0', 'c', null, '{"id": 0}'),
              ($1, 'exact', 'ledger', 'account', '1', 'c', null, '{"id": 1, "balance": ${BIG[0]}}'),
              ($2, 'exact', 'ledger', 'account', '1', 'u', '{"id": 1, "balance": ${BIG[0]}}',
                   '{"id": 1, "balance": ${BIG[1]}, "limits": [${BIG[2]}, 1]}')`,
      [at(1000), at(2000), at(0)],
    );
    app = await startMsr(db.url, {}, { log });
  });
  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  /** Every message the server sends on one socket while it opens at `at` and plays at `speed`. */
  async function session(subprotocol: Subprotocol, at: number, speed: 'max' | '-max'): Promise<string[]> {
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/v1/replay`, [subprotocol]);
    const messages: string[] = [];
    const send = (message: object) =>
      ws.send(isMsgpack(subprotocol) ? pack(message) : JSON.stringify(message));
    try {
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const ended = new Promise<void>((resolve) =>
        ws.on('message', (data: Buffer, binary: boolean) => {
          // msgpack as JSON text with big integers as digits, so both read alike below.
          const text = binary
            ? JSON.stringify(unpack(data), (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))
            : data.toString('utf8');
          messages.push(text);
          if (text.includes('"type":"end"')) resolve();
        }),
      );
      send({ type: 'open', from: t0, to: t0 + 3000, at, speed });
      send({ type: 'play' });
      await ended;
      // Closed, not left to linger detached: each user may hold only so many sessions.
      const closed = new Promise<void>((resolve) =>
        ws.on('message', () => messages.at(-1)!.includes('"bye"') && resolve()),
      );
      send({ type: 'close', rid: 'bye' });
      await closed;
    } finally {
      ws.close();
    }
    return messages;
  }

  /** How a big integer appears in a message of this subprotocol. */
  const digits = (subprotocol: Subprotocol, n: string) => (isMsgpack(subprotocol) ? `"${n}n"` : n);

  it.each(SUBPROTOCOLS)(
    'keeps every digit over %s in keyframes and in frames both ways',
    async (subprotocol) => {
      const forward = await session(subprotocol, t0, 'max');
      const frames = forward.filter((m) => m.includes('"type":"frame"')).join('\n');
      expect(frames).toContain(digits(subprotocol, BIG[0]!));
      expect(frames).toContain(digits(subprotocol, BIG[1]!));
      expect(frames).toContain(digits(subprotocol, BIG[2]!));

      const backward = await session(subprotocol, t0 + 3000, '-max');
      const keyframe = backward.filter((m) => m.includes('"type":"keyframe"')).join('\n');
      expect(keyframe).toContain(digits(subprotocol, BIG[1]!));
      // Going back over the update restores its before image.
      const undone = backward.filter((m) => m.includes('"type":"frame"')).join('\n');
      expect(undone).toContain(digits(subprotocol, BIG[0]!));
    },
  );

  it('keeps every digit in the entity history', async () => {
    const response = await fetch(
      `http://127.0.0.1:${app.port}/api/v1/entities/ledger.account/1/history?from=${t0}&to=${t0 + 3000}`,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    const text = await response.text();
    for (const n of BIG) expect(text).toContain(n);
    const body = JSON.parse(text) as { table: string; id: string; changes: { op: string }[]; next: unknown };
    expect(body).toMatchObject({ table: 'ledger.account', id: '1', next: null });
    expect(body.changes.map((c) => c.op)).toEqual(['c', 'u']);
  });
});
