import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveEdge } from '../../../server/replay/live.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { generateHistory, hoursAgo, insertHistory } from '../../support/history.js';

// Live-follow remembers the ids it sent so a late commit is not sent twice; rows older than the
// epoch's start can never be checked again, so a session catching up through history keeps none.
describe('the live edge', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  it('keeps only ids that can still be checked, and still sends a late row once', async () => {
    const history = generateHistory(9, hoursAgo(2), 3_600_000, 5_000);
    await insertHistory(db.pool, history);
    const edge = new LiveEdge(db.pool, {});
    await edge.begin();
    // Catching up: every id read so far is older than the epoch's start.
    edge.remember(history.map((e) => String(e.id)));
    expect(edge.remembered).toBe(0);

    // A row written now, read (and sent) by the session, is kept; one written after it but
    // stamped in the past is a late row: corrected once, then known.
    const late = generateHistory(10, hoursAgo(1), 60_000, 2);
    await insertHistory(db.pool, late.slice(0, 1));
    edge.remember([String(late[0]!.id)]);
    expect(edge.remembered).toBe(1);
    await insertHistory(db.pool, late.slice(1));
    const position = Date.now() * 1000;
    const first = await edge.corrections(position);
    expect(first.map((c) => c.id)).toEqual([late[1]!.entityId]);
    expect(await edge.corrections(position)).toEqual([]);
    expect(edge.remembered).toBe(2);
  });
});
