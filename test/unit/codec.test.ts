import { describe, expect, it } from 'vitest';
import { pack, unpack } from 'msgpackr';
import { encode, parse } from '@msr/protocol/codec';
import { MAX_CLIENT_MESSAGE_BYTES } from '@msr/protocol/wire';
import { encodeOutgoing, JsonText } from '../../server/replay/outgoing.js';
import { decodeClientMessage } from '../../server/transport/decode-client.js';
import {
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  SUBPROTOCOL_V2_JSON,
  SUBPROTOCOL_V2_MSGPACK,
  SUBPROTOCOLS,
  ServerMessage,
  ServerMessageV2,
} from '@msr/protocol/messages';

const json = (v: unknown) => JSON.stringify(v);

describe('client message decoding', () => {
  it('accepts every control in both encodings', () => {
    const messages = [
      {
        type: 'open',
        rid: 1,
        from: 1000,
        to: 2000,
        at: 1500,
        speed: 8,
        tables: ['city.vehicle'],
        entities: ['7'],
      },
      { type: 'attach', session: '3f1b2a9e-7c4d-4e5f-9a1b-2c3d4e5f6a7b' },
      { type: 'play', rid: 'a' },
      { type: 'pause' },
      { type: 'seek', t: 1234 },
      { type: 'speed', speed: -4 },
      { type: 'speed', speed: 'max' },
      { type: 'close' },
    ];
    for (const message of messages) {
      expect(decodeClientMessage(json(message), SUBPROTOCOL_JSON)).toEqual({ ok: true, message });
      expect(decodeClientMessage(pack(message), SUBPROTOCOL_MSGPACK)).toEqual({ ok: true, message });
    }
  });

  it.each([
    ['not JSON', '{"type":', 'BAD_MESSAGE', /not valid JSON/],
    ['an array', '[1,2]', 'BAD_MESSAGE', /must be an object/],
    ['no type', '{"t":1}', 'BAD_MESSAGE', /missing field: type/],
    ['an unknown type', '{"type":"rewind","rid":9}', 'UNKNOWN_TYPE', /rewind/],
    ['a missing field', '{"type":"seek","rid":"s1"}', 'BAD_MESSAGE', /seek: t:/],
    ['a wrong-typed field', '{"type":"seek","t":"soon"}', 'BAD_MESSAGE', /t:/],
    ['an unknown field', '{"type":"play","volume":3}', 'BAD_MESSAGE', /volume/],
    ['a speed out of range', '{"type":"speed","speed":5000}', 'BAD_MESSAGE', /between 0.1 and 1000/],
    ['a zero speed', '{"type":"speed","speed":0}', 'BAD_MESSAGE', /speed/],
    [
      'a bad table name',
      '{"type":"open","from":1,"to":2,"tables":["vehicle"]}',
      'BAD_MESSAGE',
      /schema.table/,
    ],
  ])('rejects %s with %s', (_label, raw, code, pattern) => {
    const result = decodeClientMessage(raw, SUBPROTOCOL_JSON);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.code).toBe(code);
    expect(result.message).toMatch(pattern);
  });

  // Encoders of other languages write an integer past 2^32 (every epoch-ms time) as uint64 or
  // int64, some every int64 field so; msgpackr writes it as a float. Both are numbers here.
  it('reads 64-bit integers from other msgpack encoders as numbers', () => {
    const seek = pack({ type: 'seek', rid: 3, t: 1_795_500_000_123n }); // calendar-free: a time, not today
    expect(seek[seek.length - 9]).toBe(0xd3); // int64
    const unsigned = Uint8Array.from(seek);
    unsigned[seek.length - 9] = 0xcf; // the same value as uint64
    for (const bytes of [seek, unsigned]) {
      expect(decodeClientMessage(bytes, SUBPROTOCOL_MSGPACK)).toEqual({
        ok: true,
        message: { type: 'seek', rid: 3, t: 1_795_500_000_123 }, // calendar-free: a time, not today
      });
    }
    const speed = pack({ type: 'speed', speed: -4n });
    expect(speed[speed.length - 9]).toBe(0xd3);
    expect(decodeClientMessage(speed, SUBPROTOCOL_MSGPACK)).toEqual({
      ok: true,
      message: { type: 'speed', speed: -4 },
    });
  });

  it('keeps the rid of a bad message so the error can answer it', () => {
    const result = decodeClientMessage('{"type":"seek","rid":"s1"}', SUBPROTOCOL_JSON);
    expect(result).toMatchObject({ ok: false, rid: 's1' });
  });

  it('echoes little of what it refuses: a bounded type, and a rid only as long as the protocol allows', () => {
    const huge = 'x'.repeat(200_000);
    const unknown = decodeClientMessage(JSON.stringify({ type: huge, rid: 7 }), SUBPROTOCOL_JSON);
    expect(unknown).toMatchObject({ ok: false, code: 'UNKNOWN_TYPE', rid: 7 });
    expect(JSON.stringify(unknown).length).toBeLessThan(300);
    const longRid = decodeClientMessage(JSON.stringify({ type: 'play', rid: huge }), SUBPROTOCOL_JSON);
    expect(longRid).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
    expect(longRid).not.toHaveProperty('rid');
    expect(JSON.stringify(longRid).length).toBeLessThan(300);
  });

  it('rejects malformed msgpack and oversize messages', () => {
    const bad = decodeClientMessage(new Uint8Array([0xc1]), SUBPROTOCOL_MSGPACK);
    expect(bad).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
    const big = decodeClientMessage(`"${'x'.repeat(MAX_CLIENT_MESSAGE_BYTES)}"`, SUBPROTOCOL_JSON);
    expect(big).toMatchObject({ ok: false, code: 'MESSAGE_TOO_LARGE' });
    // Server messages have no such limit: a frame at full speed can be megabytes.
    const frame = JSON.stringify({
      type: 'frame',
      epoch: 1,
      seq: 0,
      t: 1,
      changes: [],
      pad: 'x'.repeat(2 ** 20),
    });
    expect(parse(frame, SUBPROTOCOL_JSON).ok).toBe(true);
  });
});

describe('server message encoding', () => {
  const frame = {
    type: 'frame',
    epoch: 2,
    seq: 7,
    t: 1795500000000,
    changes: [
      {
        table: 'city.vehicle',
        id: '7',
        op: 'u',
        ts: 1795500000000,
        state: { lat: 60.1, status: 'en_route' },
      },
    ],
  } as const;

  it('is text JSON or binary msgpack with the same shape, valid against the schema', () => {
    const text = encode(frame, SUBPROTOCOL_JSON);
    expect(typeof text).toBe('string');
    const binary = encode(frame, SUBPROTOCOL_MSGPACK);
    expect(binary).toBeInstanceOf(Uint8Array);
    for (const [data, sub] of [
      [text, SUBPROTOCOL_JSON],
      [binary, SUBPROTOCOL_MSGPACK],
    ] as const) {
      const parsed = parse(data, sub);
      expect(parsed).toEqual({ ok: true, message: frame });
      expect(ServerMessage.safeParse(parsed.ok && parsed.message).success).toBe(true);
    }
  });
});

describe('the examples in PROTOCOL.md', () => {
  it('decode as documented', () => {
    const fixmap = Uint8Array.from(
      '82 a4 74 79 70 65 a4 70 6c 61 79 a3 72 69 64 03'.split(' ').map((h) => parseInt(h, 16)),
    );
    expect(decodeClientMessage(fixmap, SUBPROTOCOL_MSGPACK)).toEqual({
      ok: true,
      message: { type: 'play', rid: 3 },
    });
    const written = encode({ type: 'play', rid: 3 }, SUBPROTOCOL_MSGPACK) as Uint8Array;
    expect(Buffer.from(written).toString('hex')).toBe('de0002a474797065a4706c6179a372696403');
  });
});

describe("keyframes holding the database's JSON text", () => {
  // As jsonb::text writes them: spaces after separators, digits beyond a double's precision.
  const states = ['{"id": 7, "pos": [1.5, -2], "big": 12345678901234567890}', '{"name": "a \\"b\\" é"}'];
  const part = {
    type: 'keyframe' as const,
    epoch: 3,
    t: 1500.25,
    part: 0,
    last: true,
    entities: states.map((text, i) => ({ table: 'city.vehicle', id: String(i), state: new JsonText(text) })),
  };

  it('splices the text into JSON unchanged and validates as a keyframe message', () => {
    const text = encodeOutgoing(part, SUBPROTOCOL_JSON) as string;
    expect(text).toContain('"state":{"id": 7, "pos": [1.5, -2], "big": 12345678901234567890}');
    const decoded = JSON.parse(text) as unknown;
    expect(ServerMessage.parse(decoded)).toEqual({
      ...part,
      entities: states.map((s, i) => ({
        table: 'city.vehicle',
        id: String(i),
        state: JSON.parse(s) as unknown,
      })),
    });
  });

  it('parses the text for msgpack, to the same message, an integer past 2^53 exact as uint64', () => {
    const bytes = encodeOutgoing(part, SUBPROTOCOL_MSGPACK) as Uint8Array;
    expect(parse(bytes, SUBPROTOCOL_MSGPACK)).toEqual({
      ok: true,
      message: JSON.parse(encodeOutgoing(part, SUBPROTOCOL_JSON) as string),
    });
    const exact = unpack(bytes) as { entities: { state: { big: unknown } }[] };
    expect(exact.entities[0]!.state.big).toBe(12345678901234567890n);
  });

  it('encodes an empty last part like any message', () => {
    const empty = { ...part, entities: [] };
    expect(JSON.parse(encodeOutgoing(empty, SUBPROTOCOL_JSON) as string)).toEqual(empty);
  });
});

describe("frames holding the database's JSON text", () => {
  const frame = {
    type: 'frame' as const,
    epoch: 4,
    seq: 9,
    t: 2000.5,
    coalesced: true,
    changes: [
      {
        table: 'city.vehicle',
        id: '7',
        op: 'u' as const,
        ts: 2000,
        state: new JsonText('{"id": 7, "big": 9007199254740993}'),
      },
      { table: 'city.vehicle', id: '8', op: 'd' as const, ts: 2000.5 },
      { table: 'city.stop', id: '', op: 't' as const, ts: 2000.5 },
    ],
  };
  const wire = {
    ...frame,
    changes: [
      { table: 'city.vehicle', id: '7', op: 'u', ts: 2000, state: { id: 7, big: 9007199254740992 } },
      { table: 'city.vehicle', id: '8', op: 'd', ts: 2000.5 },
      { table: 'city.stop', id: '', op: 't', ts: 2000.5 },
    ],
  };

  it.each(SUBPROTOCOLS)(
    'over %s: the states as stored, every digit kept, and a valid frame',
    (subprotocol) => {
      const data = encodeOutgoing(frame, subprotocol);
      if (typeof data === 'string') expect(data).toContain('"state":{"id": 7, "big": 9007199254740993}');
      else
        expect((unpack(data) as { changes: { state?: { big: unknown } }[] }).changes[0]!.state?.big).toBe(
          9007199254740993n,
        );
      const parsed = parse(data, subprotocol);
      // A JavaScript client reads the number as JSON.parse does (rounded), from either encoding.
      expect(parsed).toEqual({ ok: true, message: wire });
      expect(ServerMessageV2.parse(parsed.ok && parsed.message)).toEqual(wire);
    },
  );
});

describe('keyframes in protocol v2, grouped by table', () => {
  // Tables interleaved as a part may hold them (the database's order is by entity, not table).
  const rows = [
    { table: 'city.vehicle', id: '7', text: '{"id": 7, "big": 12345678901234567890}' },
    { table: 'city.stop', id: 'a|b', text: '{"name": "a \\"b\\" é"}' },
    { table: 'city.vehicle', id: '8', text: '{"id": 8}' },
    { table: 'city.stop', id: '2', text: '{}' },
  ];
  const part = {
    type: 'keyframe' as const,
    epoch: 2,
    t: 99.5,
    part: 4,
    last: false,
    entities: rows.map((r) => ({ table: r.table, id: r.id, state: new JsonText(r.text) })),
  };
  /** The v1 part's entities, as (table, id, state) triples. */
  const v1Entities = () =>
    (JSON.parse(encodeOutgoing(part, SUBPROTOCOL_JSON) as string) as { entities: unknown[] }).entities;
  const triples = (tables: Record<string, Record<string, unknown>>) =>
    Object.entries(tables).flatMap(([table, states]) =>
      Object.entries(states).map(([id, state]) => ({ table, id, state })),
    );

  it('names each table once, holds the same entities as v1, and validates as a v2 message', () => {
    const text = encodeOutgoing(part, SUBPROTOCOL_V2_JSON) as string;
    expect(text.match(/city\.vehicle/g)).toHaveLength(1);
    expect(text).toContain('"7":{"id": 7, "big": 12345678901234567890}');
    const message = ServerMessageV2.parse(JSON.parse(text));
    expect(message).toMatchObject({ type: 'keyframe', epoch: 2, t: 99.5, part: 4, last: false });
    if (!('tables' in message)) throw new Error('not a grouped keyframe');
    expect(Object.keys(message.tables)).toEqual(['city.vehicle', 'city.stop']);
    expect(new Set(triples(message.tables).map((e) => JSON.stringify(e)))).toEqual(
      new Set(v1Entities().map((e) => JSON.stringify(e))),
    );
    expect(ServerMessage.safeParse(message).success).toBe(false);
  });

  it('is shorter than v1 for the same part', () => {
    const many = {
      ...part,
      entities: Array.from({ length: 1000 }, (_, i) => ({
        table: 'public.pgbench_accounts',
        id: String(i),
        state: new JsonText(`{"aid": ${i}, "bid": 1, "abalance": 0}`),
      })),
    };
    const v1 = (encodeOutgoing(many, SUBPROTOCOL_JSON) as string).length;
    const v2 = (encodeOutgoing(many, SUBPROTOCOL_V2_JSON) as string).length;
    expect(v2).toBeLessThan(v1 * 0.6);
  });

  it('parses the text for msgpack, to the same message as v2 JSON', () => {
    const decoded = parse(encodeOutgoing(part, SUBPROTOCOL_V2_MSGPACK), SUBPROTOCOL_V2_MSGPACK);
    expect(decoded).toEqual({
      ok: true,
      message: JSON.parse(encodeOutgoing(part, SUBPROTOCOL_V2_JSON) as string),
    });
  });

  it('sends an empty part with no tables', () => {
    const empty = { ...part, last: true, entities: [] };
    const { entities: _, ...header } = empty;
    expect(JSON.parse(encodeOutgoing(empty, SUBPROTOCOL_V2_JSON) as string)).toEqual({
      ...header,
      tables: {},
    });
    expect(unpack(encodeOutgoing(empty, SUBPROTOCOL_V2_MSGPACK) as Uint8Array)).toEqual({
      ...header,
      tables: {},
    });
  });

  it('leaves every other message as in v1', () => {
    const frame = { type: 'frame' as const, epoch: 1, seq: 0, t: 5, changes: [] };
    expect(encodeOutgoing(frame, SUBPROTOCOL_V2_JSON)).toBe(encodeOutgoing(frame, SUBPROTOCOL_JSON));
    expect(encodeOutgoing(frame, SUBPROTOCOL_V2_MSGPACK)).toEqual(encodeOutgoing(frame, SUBPROTOCOL_MSGPACK));
  });
});

// "__proto__" is a legal column name and entity id. zod's records and msgpackr's objects each
// treat it as special (dropped; renamed "__proto_"), and a plain object given it as a key gains a
// prototype instead, so each path is checked to carry it as data.
describe('a column or an entity id named __proto__', () => {
  const part = {
    type: 'keyframe' as const,
    epoch: 1,
    t: 10,
    part: 0,
    last: true,
    entities: [
      {
        table: 'public.odd',
        id: '__proto__',
        state: new JsonText('{"__proto__": {"x": 1}, "id": "__proto__"}'),
      },
      { table: 'public.odd', id: '7', state: new JsonText('{"id": "7"}') },
    ],
  };
  /** The part's entities as `table|id -> state`, whichever version the message is. */
  const states = (message: unknown) => {
    const out = new Map<string, unknown>();
    const m = message as { entities?: { table: string; id: string; state: unknown }[]; tables?: object };
    for (const e of m.entities ?? []) out.set(`${e.table}|${e.id}`, e.state);
    for (const [table, ids] of Object.entries(m.tables ?? {}) as [string, object][]) {
      for (const [id, state] of Object.entries(ids)) out.set(`${table}|${id}`, state);
    }
    return out;
  };
  const expected = new Map<string, unknown>([
    ['public.odd|__proto__', JSON.parse('{"__proto__": {"x": 1}, "id": "__proto__"}')],
    ['public.odd|7', { id: '7' }],
  ]);

  it.each(SUBPROTOCOLS)(
    'keeps them in a keyframe part over %s, through the codec and the schema',
    (subprotocol) => {
      const parsed = parse(encodeOutgoing(part, subprotocol), subprotocol);
      if (!parsed.ok) throw new Error(parsed.message);
      const schema = subprotocol.startsWith('msr.v2') ? ServerMessageV2 : ServerMessage;
      for (const message of [parsed.message, schema.parse(parsed.message)]) {
        const got = states(message);
        // A JSON object lists integer-like keys first, so v2 may hold them in another order.
        expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
        const proto = got.get('public.odd|__proto__') as object;
        expect(Object.keys(proto)).toEqual(['__proto__', 'id']);
        expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
        expect(JSON.stringify(proto)).toBe('{"__proto__":{"x":1},"id":"__proto__"}');
      }
    },
  );

  it('keeps them in a frame over msgpack, and leaves a near miss to the fast path', () => {
    const state = JSON.parse('{"__proto__": 5, "__proto_": 6}') as Record<string, unknown>;
    const frame = {
      type: 'frame',
      epoch: 1,
      seq: 0,
      t: 5,
      changes: [{ table: 'public.odd', id: '__proto__', op: 'u', ts: 5, state }],
    };
    const parsed = parse(encode(frame, SUBPROTOCOL_MSGPACK), SUBPROTOCOL_MSGPACK);
    expect(parsed.ok && JSON.stringify(ServerMessage.parse(parsed.message))).toBe(JSON.stringify(frame));
    const near = { ...frame, changes: [{ ...frame.changes[0]!, state: { __proto_: 6 } }] };
    expect(parse(encode(near, SUBPROTOCOL_MSGPACK), SUBPROTOCOL_MSGPACK)).toEqual({
      ok: true,
      message: near,
    });
  });
});
