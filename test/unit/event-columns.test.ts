import { describe, expect, it } from 'vitest';
import { isCopyReady, type ChangeEvent } from '../../server/ingest/change.js';
import { copyReady, eventColumnsText } from '../../server/ingest/event-columns.js';

// The Kafka decoder hands keyed changes on as COPY text of their columns; the writer then sends
// that text as it came. It must be the text the writer makes of the whole change, and changes the
// writer still reads (keyless rows, truncates) must stay whole.

const event = (extra: Partial<ChangeEvent> = {}): ChangeEvent => ({
  eventTimeUs: 1_000_001n, // calendar-free: a value carried through, not a date
  source: 'src\tone',
  schema: 'back\\slash',
  table: 'new\nline',
  entityId: 'id\r1',
  op: 'u',
  before: null,
  after: '{"text":"a\\tb \\\\N"}',
  unavailable: ['big'],
  lsn: '42',
  txId: null,
  ...extra,
});

describe('copyReady', () => {
  it('keeps what the writer reads and the COPY text of the rest, escaped as PostgreSQL reads it', () => {
    const ready = copyReady(event());
    expect(isCopyReady(ready)).toBe(true);
    expect(ready).toEqual({
      eventTimeUs: 1_000_001n,
      entityId: 'id\r1',
      op: 'u',
      unavailable: ['big'],
      copyColumns:
        'src\\tone\tback\\\\slash\tnew\\nline\tid\\r1\tu\t\\N\t{"text":"a\\\\tb \\\\\\\\N"}\t42\t\\N',
    });
    expect(eventColumnsText(ready)).toBe(eventColumnsText(event()));
  });

  it('keeps a keyless change and a truncate whole', () => {
    const keyless = event({ entityId: '', keyless: { before: 'b', after: 'a' } });
    const truncate = event({ op: 't', entityId: '', after: null });
    expect(copyReady(keyless)).toBe(keyless);
    expect(copyReady(truncate)).toBe(truncate);
    expect(isCopyReady(copyReady(keyless))).toBe(false);
  });
});
