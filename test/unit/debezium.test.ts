import { describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../server/ingest/change.js';
import { DecodeError, decodeRecord, entityId } from '../../server/ingest/debezium.js';
import { decimal } from '../../server/ingest/encodings.js';

// Debezium PostgreSQL change events as the JSON converter writes them, with and without embedded
// schemas. Expected values are worked out by hand (decimal bytes with Python's int.to_bytes).

const TOPIC = 'gis_server.gis.bookmark';
const source = {
  version: '3.0.8.Final',
  connector: 'postgresql',
  name: 'gis_server',
  ts_ms: 1795516215123,
  ts_us: 1795516215123456,
  snapshot: 'false',
  db: 'gis',
  schema: 'gis',
  table: 'bookmark',
  txId: 771,
  lsn: 24023128,
};

const field = (f: string, type: string, extra: Record<string, unknown> = {}) => ({
  field: f,
  type,
  optional: true,
  ...extra,
});
const rowSchema = (f: string) => ({
  type: 'struct',
  optional: true,
  field: f,
  name: 'gis_server.gis.bookmark.Value',
  fields: [
    field('id', 'int32', { optional: false }),
    field('price', 'bytes', { name: 'org.apache.kafka.connect.data.Decimal', parameters: { scale: '2' } }),
    field('amount', 'struct', { name: 'io.debezium.data.VariableScaleDecimal' }),
    field('day', 'int32', { name: 'io.debezium.time.Date' }),
    field('seen_at', 'int64', { name: 'io.debezium.time.MicroTimestamp' }),
    field('created_at', 'string', { name: 'io.debezium.time.ZonedTimestamp' }),
    field('at_ms', 'int64', { name: 'io.debezium.time.Timestamp' }),
    field('opens', 'int64', { name: 'io.debezium.time.MicroTime' }),
    field('doc', 'string', { name: 'io.debezium.data.Json' }),
    field('uid', 'string', { name: 'io.debezium.data.Uuid' }),
    field('tags', 'array', { items: { type: 'string', optional: true } }),
    field('days', 'array', { items: { type: 'int32', name: 'io.debezium.time.Date', optional: true } }),
    field('note', 'string'),
  ],
});
const envelopeSchema = {
  type: 'struct',
  name: 'gis_server.gis.bookmark.Envelope',
  fields: [
    rowSchema('before'),
    rowSchema('after'),
    field('source', 'struct'),
    field('op', 'string'),
    field('ts_ms', 'int64'),
  ],
};

const row = {
  id: 42,
  price: 'BNI=',
  amount: { scale: 0, value: 'AY7pD/bDc+DuTj8K0g==' },
  day: 20781,
  seen_at: 1795516215123456,
  created_at: '2026-11-24T10:30:15.123456Z',
  at_ms: 1795516215000,
  opens: 30_600_500_000,
  doc: '{"a": [1, 2.50], "big": 12345678901234567890}',
  uid: '0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11',
  tags: ['a', 'b'],
  days: [20781, 0],
  note: 'hello',
};

const withSchema = (payload: unknown, schema: unknown = envelopeSchema) =>
  Buffer.from(JSON.stringify({ schema, payload }));
const plain = (payload: unknown) => Buffer.from(JSON.stringify(payload));
const keyOf = (id: number) =>
  withSchema({ id }, { type: 'struct', fields: [field('id', 'int32', { optional: false })] });

const change = (value: Buffer, key: Buffer | null = keyOf(42), topic = TOPIC): ChangeEvent => {
  const decoded = decodeRecord({ topic, key, value });
  if (decoded.kind !== 'change') throw new Error(`skipped: ${decoded.why}`);
  return decoded.event;
};

const reason = (work: () => unknown) => {
  try {
    work();
  } catch (err) {
    if (err instanceof DecodeError) return err.reason;
    throw err;
  }
  throw new Error('did not throw');
};

describe('Debezium change event decoding', () => {
  it('decodes an update with an embedded schema into the JSON a user expects', () => {
    const event = change(
      withSchema({ before: { ...row, note: 'old' }, after: row, source, op: 'u', ts_ms: 1 }),
    );
    expect(event).toMatchObject({
      eventTimeUs: 1795516215123456n,
      source: 'gis_server',
      schema: 'gis',
      table: 'bookmark',
      entityId: '42',
      op: 'u',
      lsn: '24023128',
      txId: '771',
      unavailable: [],
    });
    expect(event.after).toBe(
      '{"id":42,"price":12.34,"amount":123456789012345678901234567890,"day":"2026-11-24",' +
        '"seen_at":"2026-11-24T10:30:15.123456","created_at":"2026-11-24T10:30:15.123456Z",' +
        '"at_ms":"2026-11-24T10:30:15","opens":"08:30:00.5",' +
        '"doc":{"a": [1, 2.50], "big": 12345678901234567890},' +
        '"uid":"0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11","tags":["a","b"],"days":["2026-11-24","1970-01-01"],' +
        '"note":"hello"}',
    );
    expect(JSON.parse(event.before!).note).toBe('old');
  });

  it('takes values as they come without a schema, and ts_ms when ts_us is absent', () => {
    const { ts_us: _drop, ...msOnly } = source;
    const event = change(
      plain({ before: null, after: { id: 7, price: '12.34', doc: '{"x":1}' }, source: msOnly, op: 'c' }),
      plain({ id: 7 }),
    );
    expect(event.eventTimeUs).toBe(1795516215123000n);
    expect(event.entityId).toBe('7');
    expect(event.after).toBe('{"id":7,"price":"12.34","doc":"{\\"x\\":1}"}');
    expect(event.before).toBeNull();
  });

  it('keeps deletes with their before image and truncates with no key', () => {
    const del = change(withSchema({ before: row, after: null, source, op: 'd' }));
    expect([del.op, del.after, JSON.parse(del.before!).id]).toEqual(['d', null, 42]);
    const truncate = change(plain({ source, op: 't' }), null);
    expect([truncate.op, truncate.entityId, truncate.before, truncate.after]).toEqual(['t', '', null, null]);
    const snapshot = change(
      plain({ before: null, after: { id: 42 }, source: { ...source, snapshot: 'true' }, op: 'r' }),
    );
    expect(snapshot.op).toBe('r');
  });

  it('lists columns Debezium could not read instead of storing its placeholder', () => {
    const event = change(
      plain({
        before: null,
        after: {
          id: 1,
          body: '__debezium_unavailable_value',
          blob: 'X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==',
          list: ['__debezium_unavailable_value'],
          n: 3,
        },
        source,
        op: 'u',
      }),
    );
    expect(event.unavailable).toEqual(['body', 'blob', 'list']);
    expect(event.after).toBe('{"id":1,"n":3}');
  });

  it('skips tombstones, heartbeats and transaction markers', () => {
    expect(decodeRecord({ topic: TOPIC, key: keyOf(1), value: null })).toEqual({
      kind: 'skip',
      why: 'tombstone',
    });
    expect(
      decodeRecord({ topic: '__debezium-heartbeat.gis_server', key: null, value: plain({ ts_ms: 1 }) }).kind,
    ).toBe('skip');
    expect(
      decodeRecord({
        topic: 'gis_server.transaction',
        key: null,
        value: plain({ status: 'BEGIN', id: '771' }),
      }),
    ).toEqual({
      kind: 'skip',
      why: 'transaction marker',
    });
  });

  it('tells the rows of a table without a key apart by their images, whatever the column order', () => {
    const insert = change(plain({ after: { a: 1, b: 'x' }, op: 'c', source }), null);
    expect(insert.entityId).toBe('');
    expect(insert.keyless).toEqual({ before: null, after: expect.stringMatching(/^[\w-]{27}$/) });
    const update = change(
      plain({ before: { b: 'x', a: 1 }, after: { a: 2, b: 'x' }, op: 'u', source }),
      null,
    );
    expect(update.keyless!.before).toBe(insert.keyless!.after);
    expect(update.keyless!.after).not.toBe(insert.keyless!.after);
    const remove = change(plain({ before: { a: 2, b: 'x' }, op: 'd', source }), null);
    expect(remove.keyless).toEqual({ before: update.keyless!.after, after: null });
    // A keyed table's change has no such images.
    expect(change(plain({ after: { a: 1, b: 'x' }, op: 'c', source })).keyless).toBeUndefined();
  });

  it('stores an MSR capture record at the coordinates it carries, any other at its Kafka offset', () => {
    const decoded = decodeRecord({
      topic: TOPIC,
      key: keyOf(1),
      value: plain({
        after: { id: 1 },
        op: 'c',
        source: { ...source, connector: 'msr', msr_seq: 7, msr_commit_lsn: '9007199254740993' },
      }),
    });
    expect(decoded).toMatchObject({
      kind: 'change',
      coordinates: { partition: 7, offset: '9007199254740993' },
    });
    const debezium = decodeRecord({
      topic: TOPIC,
      key: keyOf(1),
      value: plain({ after: { id: 1 }, op: 'c', source }),
    });
    expect(debezium.kind === 'change' && debezium.coordinates).toBeUndefined();
  });

  it('rejects what is not a change event with a stable reason', () => {
    const value = (v: unknown) => () =>
      decodeRecord({ topic: TOPIC, key: keyOf(1), value: typeof v === 'string' ? Buffer.from(v) : plain(v) });
    expect(reason(value('{not json'))).toBe('NOT_JSON');
    expect(reason(value([1, 2]))).toBe('NOT_A_CHANGE_EVENT');
    expect(reason(value({ after: {}, source }))).toBe('NOT_A_CHANGE_EVENT');
    expect(reason(value({ after: {}, source, op: 'x' }))).toBe('UNKNOWN_OP');
    expect(reason(value({ after: {}, op: 'c' }))).toBe('MISSING_SOURCE');
    expect(reason(value({ after: {}, op: 'c', source: { ...source, table: '' } }))).toBe('MISSING_SOURCE');
    // MSR's capture names where a change is stored; without it a record could be stored twice.
    expect(reason(value({ after: {}, op: 'c', source: { ...source, connector: 'msr' } }))).toBe(
      'MISSING_SOURCE',
    );
    expect(
      reason(
        value({
          after: {},
          op: 'c',
          source: { ...source, connector: 'msr', msr_seq: 1, msr_commit_lsn: 'x' },
        }),
      ),
    ).toBe('MISSING_SOURCE');
    expect(reason(value({ after: {}, op: 'c', source: { name: 'a', schema: 'b', table: 'c' } }))).toBe(
      'BAD_TIMESTAMP',
    );
    expect(reason(value({ after: 'text', op: 'c', source }))).toBe('BAD_VALUE');
    // A table without a key and without full before images: its updates and deletes name no row.
    expect(
      reason(() =>
        decodeRecord({
          topic: TOPIC,
          key: null,
          value: plain({ before: null, after: { v: 1 }, op: 'u', source }),
        }),
      ),
    ).toBe('MISSING_KEY');
    expect(
      reason(() =>
        decodeRecord({ topic: TOPIC, key: null, value: plain({ before: null, op: 'd', source }) }),
      ),
    ).toBe('MISSING_KEY');
    expect(
      reason(() =>
        decodeRecord({
          topic: TOPIC,
          key: keyOf(1),
          value: withSchema({ after: { ...row, doc: '{broken' }, op: 'c', source }),
        }),
      ),
    ).toBe('BAD_VALUE');
  });
});

describe('entity ids from record keys', () => {
  it('is the value of a one-column key and a name-ordered object for composite keys', () => {
    expect(entityId(plain({ id: 5 }))).toBe('5');
    expect(entityId(plain({ code: 'ab-1' }))).toBe('ab-1');
    expect(entityId(plain({ b: 2, a: 'x' }))).toBe('{"a":"x","b":2}');
    expect(entityId(plain({ a: 'x', b: 2 }))).toBe('{"a":"x","b":2}');
    const schemaKey = withSchema(
      { tenant: 3, uid: '0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11' },
      {
        type: 'struct',
        fields: [field('tenant', 'int32'), field('uid', 'string', { name: 'io.debezium.data.Uuid' })],
      },
    );
    expect(entityId(schemaKey)).toBe('{"tenant":3,"uid":"0b7a3e36-5d7a-4d1c-9d59-2d1f0c8b7e11"}');
  });

  // "__proto__" is a legal column name. Written as JSON text: in an object literal it would set
  // the prototype instead of naming a member.
  it('keeps a key column named __proto__, with a schema and without', () => {
    const struct = { type: 'struct', fields: [field('__proto__', 'int32'), field('k', 'string')] };
    const payload = '{"__proto__":9,"k":"a"}';
    const withProtoSchema = Buffer.from(`{"schema":${JSON.stringify(struct)},"payload":${payload}}`);
    expect(entityId(withProtoSchema)).toBe('{"__proto__":9,"k":"a"}');
    expect(entityId(Buffer.from(payload))).toBe('{"__proto__":9,"k":"a"}');
    const single = { type: 'struct', fields: [field('__proto__', 'int32')] };
    expect(entityId(Buffer.from(`{"schema":${JSON.stringify(single)},"payload":{"__proto__":9}}`))).toBe('9');
  });

  it('tells keyless rows apart by a column named __proto__', () => {
    const struct = {
      type: 'struct',
      optional: true,
      fields: [field('__proto__', 'int32'), field('b', 'string')],
    };
    const schema = { type: 'struct', fields: [{ ...struct, field: 'after' }, field('op', 'string')] };
    const insert = (proto: number) =>
      change(
        Buffer.from(
          `{"schema":${JSON.stringify(schema)},"payload":{"after":{"__proto__":${proto},"b":"x"},"op":"c","source":${JSON.stringify(source)}}}`,
        ),
        null,
      );
    const [one, two] = [insert(1), insert(2)];
    expect(one.after).toBe('{"__proto__":1,"b":"x"}');
    expect(one.keyless!.after).not.toBe(two.keyless!.after);
  });
});

// Debezium writes int8 columns, LSNs and nanosecond times as plain JSON numbers, which JSON.parse
// rounds past 2^53. Written as text here: a JavaScript literal would round them as well.
describe('integers past 2^53', () => {
  const int64Row = {
    type: 'struct',
    optional: true,
    fields: [
      field('id', 'int64', { optional: false }),
      field('max', 'int64'),
      field('ids', 'array', { items: { type: 'int64', optional: true } }),
      field('at', 'int64', { name: 'io.debezium.time.NanoTimestamp' }),
      field('ratio', 'double'),
    ],
  };
  const schema = {
    type: 'struct',
    fields: [
      { ...int64Row, field: 'before' },
      { ...int64Row, field: 'after' },
      field('source', 'struct'),
      field('op', 'string'),
    ],
  };
  const keySchema = { type: 'struct', fields: [field('id', 'int64', { optional: false })] };
  const sourceText = (lsn: string) =>
    JSON.stringify({ ...source, ts_ns: 0, lsn: 0 })
      .replace('"ts_ns":0', '"ts_ns":1795516215123456789')
      .replace('"lsn":0', `"lsn":${lsn}`);
  const record = (after: string, lsn = '24023128') =>
    Buffer.from(
      `{"schema":${JSON.stringify(schema)},"payload":{"before":null,"after":${after},"op":"c","source":${sourceText(lsn)},"ts_ns":1795516215123456789}}`,
    );
  const key = (id: string) => Buffer.from(`{"schema":${JSON.stringify(keySchema)},"payload":{"id":${id}}}`);

  it('keeps every digit of a key, a column, an array element and a nanosecond time', () => {
    const event = change(
      record(
        '{"id":9007199254740993,"max":9223372036854775807,"ids":[9007199254740995,-9223372036854775808,1],"at":1795516215123456789,"ratio":0.1}',
      ),
      key('9007199254740993'),
    );
    expect(event.entityId).toBe('9007199254740993');
    expect(event.after).toBe(
      '{"id":9007199254740993,"max":9223372036854775807,"ids":[9007199254740995,-9223372036854775808,1],"at":"2026-11-24T10:30:15.123456","ratio":0.1}',
    );
    expect(entityId(Buffer.from('{"id":9007199254740993}'))).toBe('9007199254740993');
    expect(entityId(Buffer.from('9007199254740993'))).toBe('9007199254740993');
  });

  it("keeps an LSN past 2^53, and decodes a record with only Debezium's own big times as before", () => {
    expect(change(record('{"id":1}', '9007199254740993'), key('1')).lsn).toBe('9007199254740993');
    const event = change(record('{"id":1,"max":2,"ids":[3],"ratio":1.5}'), key('1'));
    expect(event).toMatchObject({
      entityId: '1',
      after: '{"id":1,"max":2,"ids":[3],"ratio":1.5}',
      lsn: '24023128',
    });
  });
});

describe('precise decimals', () => {
  it('reads big-endian two-complement unscaled values with their scale', () => {
    const text = (bytes: string, scale: number, encoding: BufferEncoding = 'base64') =>
      decimal(Buffer.from(bytes, encoding), scale).text;
    expect(text('BNI=', 2)).toBe('12.34');
    expect(text('8Q==', 1)).toBe('-1.5');
    expect(text('nA==', 3)).toBe('-0.100');
    expect(text('BQ==', 4)).toBe('0.0005');
    expect(text('AA==', 2)).toBe('0.00');
    expect(text('AY7pD/bDc+DuTj8K0g==', 10)).toBe('12345678901234567890.1234567890');
    // Up to 6 bytes are read as a double, from 7 on as a BigInt: both sides of that line.
    expect(text('800000000000', 0, 'hex')).toBe('-140737488355328');
    expect(text('ffffffffffff', 2, 'hex')).toBe('-0.01');
    expect(text('7fffffffffff', 3, 'hex')).toBe('140737488355.327');
    expect(text('00800000000000', 0, 'hex')).toBe('140737488355328');
    expect(text('ff7fffffffffff', 1, 'hex')).toBe('-14073748835532.9');
  });
});
