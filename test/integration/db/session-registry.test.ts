import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SessionLimitError, SessionRegistry, type SessionRecord } from '../../../server/replay/registry.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

// Admission to msr.session's slots: claims made at the same moment are admitted together (one
// transaction), first come first served, and the cap and each owner's share hold exactly.

/** An hour ago in whole seconds, as epoch microseconds. */
const BASE_US = (Math.floor(Date.now() / 1000) - 3_600) * 1_000_000;

const record = (owner: string | null, speed: SessionRecord['speed'] = 1): SessionRecord => ({
  id: randomUUID(),
  owner,
  sharedWith: owner ? [`${owner}-friend`, 'other "quoted"'] : [],
  from: BASE_US,
  to: BASE_US + 600_000_000,
  filter: { tables: ['city.vehicle'] },
  position: BASE_US + 123_456_789,
  speed,
  playing: false,
});

/** Counts the admissions (transactions taking the admission lock) run on the pool's clients. */
function countingAdmissions(pool: Pool): () => number {
  let admissions = 0;
  pool.on('acquire', (client) => {
    const own = client as unknown as { query: (...args: unknown[]) => unknown; counted?: boolean };
    if (own.counted) return;
    own.counted = true;
    const query = own.query.bind(client);
    own.query = (...args: unknown[]) => {
      if (String(args[0]).includes('pg_advisory_xact_lock')) admissions += 1;
      return query(...args);
    };
  });
  return () => admissions;
}

describe('session admission', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await db.pool.query('delete from msr.session');
  });
  afterAll(() => db?.drop());

  it('admits 30 sessions claimed at once in at most two transactions, up to the cap, in order', async () => {
    const admissions = countingAdmissions(db.pool);
    const registry = new SessionRegistry(db.pool, 'server-a', () => 20, 60_000);
    const claims = Array.from({ length: 30 }, () => record(null));
    const outcomes = await Promise.allSettled(claims.map((c) => registry.claim(c)));
    expect(outcomes.map((o) => o.status)).toEqual([
      ...Array<string>(20).fill('fulfilled'),
      ...Array<string>(10).fill('rejected'),
    ]);
    for (const o of outcomes.slice(20)) {
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(SessionLimitError);
      expect((o as PromiseRejectedResult).reason).toMatchObject({ perUser: false });
    }
    expect(admissions()).toBeLessThanOrEqual(2);
    const { rows } = await db.pool.query<{ id: string }>('select id from msr.session order by id');
    expect(rows.map((r) => r.id).sort()).toEqual(
      claims
        .slice(0, 20)
        .map((c) => c.id)
        .sort(),
    );
    expect(await registry.activeCount()).toBe(20);
  });

  it('stores every field of each admitted session as one claimed alone would', async () => {
    const registry = new SessionRegistry(db.pool, 'server-a', () => 10, 60_000);
    const together = [record('ana', 'max'), record(null, -2.5), record('bo', '-max')];
    await Promise.all(together.map((c) => registry.claim(c)));
    const { rows } = await db.pool.query(
      `select id, owner, server_id, shared_with, filter, speed, playing,
              (extract(epoch from range_from) * 1000000)::bigint::text as range_from,
              (extract(epoch from range_to) * 1000000)::bigint::text as range_to,
              (extract(epoch from position) * 1000000)::bigint::text as position,
              lease_until > now() + interval '50 seconds' as leased
         from msr.session`,
    );
    const speeds: Record<string, number> = { max: Infinity, '-max': -Infinity };
    expect(new Map(rows.map((r) => [r.id, r]))).toEqual(
      new Map(
        together.map((c) => [
          c.id,
          {
            id: c.id,
            owner: c.owner,
            server_id: 'server-a',
            shared_with: c.sharedWith,
            filter: c.filter,
            speed: speeds[String(c.speed)] ?? c.speed,
            playing: false,
            range_from: String(c.from),
            range_to: String(c.to),
            position: String(c.position),
            leased: true,
          },
        ]),
      ),
    );
  });

  it("holds each owner's share among claims made at once, and admins' sessions outside it", async () => {
    const registry = new SessionRegistry(db.pool, 'server-a', () => 100, 60_000);
    await registry.claim(record('ana'), 3);
    const outcomes = await Promise.allSettled([
      ...Array.from({ length: 4 }, () => registry.claim(record('ana'), 3)),
      registry.claim(record('bo'), 3),
      registry.claim(record('ana')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect((outcomes[2] as PromiseRejectedResult).reason).toMatchObject({ perUser: true });
    const { rows } = await db.pool.query<{ owner: string; n: number }>(
      'select owner, count(*)::int as n from msr.session group by owner order by owner',
    );
    expect(rows).toEqual([
      { owner: 'ana', n: 4 },
      { owner: 'bo', n: 1 },
    ]);
  });

  it('counts the sessions of other servers against the cap', async () => {
    const other = new SessionRegistry(db.pool, 'server-b', () => 5, 60_000);
    await Promise.all(Array.from({ length: 4 }, () => other.claim(record(null))));
    const registry = new SessionRegistry(db.pool, 'server-a', () => 5, 60_000);
    const outcomes = await Promise.allSettled([registry.claim(record(null)), registry.claim(record(null))]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected']);
  });
});
