import { describe, expect, it } from 'vitest';
import { SeenIds } from '../../server/replay/seen-ids.js';

// What the live tail's late-row check asks for: ids after the highest read, and the ones skipped.

describe('SeenIds', () => {
  const wall = Date.now();

  it('lists the ids the reads skipped, until a read brings them or the floor passes them', () => {
    const seen = new SeenIds();
    seen.start('100');
    for (const id of ['101', '102', '105', '104', '109']) seen.add(id, wall);
    expect(seen.unseen('100')).toEqual({ after: '109', holes: ['103', '106', '107', '108'] });
    seen.add('103', wall);
    expect(seen.has('103')).toBe(true);
    expect(seen.has('106')).toBe(false);
    expect(seen.unseen('100')).toEqual({ after: '109', holes: ['106', '107', '108'] });
    // Ids at or below the floor are settled: not asked for any more.
    expect(seen.unseen('106')).toEqual({ after: '109', holes: ['107', '108'] });
    seen.prune('107', wall - 1);
    expect(seen.unseen('107')).toEqual({ after: '109', holes: ['108'] });
  });

  it('looks after the floor when nothing was read past it', () => {
    const seen = new SeenIds();
    seen.start('10');
    expect(seen.unseen('10')).toEqual({ after: '10', holes: [] });
    expect(seen.unseen('25')).toEqual({ after: '25', holes: [] });
  });

  it('falls back to every id after the floor past 50,000 holes, until the floor passes the gap', () => {
    const seen = new SeenIds();
    seen.start('0');
    seen.add('1', wall);
    seen.add('100002', wall);
    seen.add('100004', wall);
    expect(seen.unseen('0')).toEqual({ after: '0', holes: [] });
    seen.prune('100002', wall - 1);
    expect(seen.unseen('100002')).toEqual({ after: '100004', holes: ['100003'] });
  });

  it('forgets ids read before the cutoff', () => {
    const seen = new SeenIds();
    seen.start('0');
    seen.add('1', wall - 100_000);
    seen.add('2', wall);
    seen.prune('0', wall - 50_000);
    expect(seen.has('1')).toBe(false);
    expect(seen.has('2')).toBe(true);
  });
});
