import { describe, expect, it } from 'vitest';
import { SchemaPrefixes } from '../../server/ingest/schema-prefix.js';

// The decoder's shortcut for records that repeat their topic's schema: whatever the record, the
// answer is JSON.parse's, and the schema is parsed once per topic while it stays the same.

const schema = {
  type: 'struct',
  fields: [
    { field: 'id', type: 'int32' },
    // A schema whose text holds the key the shortcut looks for, inside a string and an object.
    { field: 'note', type: 'string', optional: true, default: ',"payload":' },
    { field: 'meta', type: 'string', optional: true, parameters: { payload: 'x' } },
  ],
};
const record = (payload: unknown, s: unknown = schema) => Buffer.from(JSON.stringify({ schema: s, payload }));

describe('schema prefixes', () => {
  it('answers as JSON.parse for a run of records of one schema, reusing the parsed schema', () => {
    const prefixes = new SchemaPrefixes();
    const payloads = [
      { id: 1, note: 'a', meta: null },
      { id: 2, note: '},"payload":{"id":3}', meta: '{"payload":1}' },
      { payload: { payload: [1, 2, { payload: null }] } },
      'text',
      null,
      [{}, []],
    ];
    const parsed = payloads.map(
      (p) => prefixes.parse('t', record(p)) as { schema: unknown; payload: unknown },
    );
    expect(parsed).toEqual(payloads.map((p) => ({ schema, payload: p })));
    // The second and later records were read as their payload alone: they share one schema object.
    expect(new Set(parsed.slice(1).map((p) => p.schema)).size).toBe(1);
    expect(parsed[1]!.schema).not.toBe(parsed[0]!.schema);
  });

  it('reads a record whole when it is not {schema, payload} with the learned schema', () => {
    const prefixes = new SchemaPrefixes();
    prefixes.parse('t', record({ id: 1 }));
    const other = { ...schema, fields: [{ field: 'id', type: 'int64' }] };
    const cases = [
      Buffer.from(`${record({ id: 2 }).toString().slice(0, -1)},"extra":true}`),
      record({ id: 3 }, other),
      record({ id: 4 }),
      Buffer.from(JSON.stringify({ id: 5 })),
      Buffer.from(` ${record({ id: 6 }).toString()}`),
      Buffer.from(JSON.stringify({ payload: { id: 7 }, schema })),
    ];
    for (const bytes of cases) expect(prefixes.parse('t', bytes)).toEqual(JSON.parse(bytes.toString()));
  });

  it('keeps topics apart, throws on what is not JSON, and stays bounded', () => {
    const prefixes = new SchemaPrefixes(2);
    const a = { type: 'struct', name: 'a' };
    const b = { type: 'struct', name: 'b' };
    prefixes.parse('a', record(1, a));
    expect(prefixes.parse('b', record(2, b))).toEqual({ schema: b, payload: 2 });
    expect(prefixes.parse('a', record(3, a))).toEqual({ schema: a, payload: 3 });
    expect(() => prefixes.parse('a', Buffer.from(`${record(4, a).toString().slice(0, -1)}`))).toThrow(
      SyntaxError,
    );
    expect(() =>
      prefixes.parse('a', Buffer.from('{"schema":{"type":"struct","name":"a"},"payload":}')),
    ).toThrow(SyntaxError);
    for (let i = 0; i < 10; i++) {
      prefixes.parse(`t${i}`, record(i, { type: 'struct', name: `t${i}` }));
      expect(prefixes.size).toBeLessThanOrEqual(2);
    }
    expect(prefixes.parse('a', record(5, a))).toEqual({ schema: a, payload: 5 });
  });
});
