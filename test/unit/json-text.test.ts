import { describe, expect, it } from 'vitest';
import { JsonLiteral, jsonText, type JsonValue } from '../../server/ingest/json-text.js';

describe('jsonText', () => {
  it('writes what JSON.stringify writes for plain values, members in the same order', () => {
    const values: JsonValue[] = [
      null,
      true,
      false,
      0,
      -0,
      1.5e-7,
      -12345678901234,
      '',
      'quote " back \\ newline \n tab \t nul \u0000 é 🚲',
      [],
      {},
      [1, 'a', null, [true, {}], { b: 2, a: [1] }],
      { z: 1, a: 2, 10: 'ten', 2: 'two', 'with "quote"': { nested: [null, { deep: 'x' }] } },
    ];
    for (const value of values) expect(jsonText(value)).toBe(JSON.stringify(value));
  });

  it('writes literals verbatim and special floats as null', () => {
    const row: JsonValue = {
      amount: new JsonLiteral('12345678901234567890.123456789'),
      doc: new JsonLiteral('{"k": [1, 2]}'),
      list: [Number.NaN, Number.POSITIVE_INFINITY, new JsonLiteral('1e400')],
    };
    expect(jsonText(row)).toBe(
      '{"amount":12345678901234567890.123456789,"doc":{"k": [1, 2]},"list":[null,null,1e400]}',
    );
  });
});
