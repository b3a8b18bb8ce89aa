import type { Pool } from 'pg';
import type { Speed } from '@msr/protocol/messages';
import { sqlAt, sqlMicros, type Micros } from './micros.js';
import type { EntityFilter } from './entity-filter.js';
import type { SessionSpec } from './session.js';
import { AdvisoryLock } from '../db/locks.js';
import { inTransaction } from '../db/transaction.js';
import { ACTIVE_SESSION } from '../db/sql-fragments.js';

/** What msr.session records of a session, enough to resume it on any server. */
export type SessionRecord = SessionSpec;

/** Where a session is, as its server records it with each lease renewal. */
export interface SessionPosition {
  readonly id: string;
  readonly position: Micros;
  readonly speed: Speed;
  readonly playing: boolean;
}

export class SessionLimitError extends Error {
  constructor(
    message: string,
    /** One user's share was full, not the whole cap. */
    readonly perUser = false,
  ) {
    super(message);
  }
}

/** A session waiting for its slot. */
interface PendingClaim {
  readonly session: SessionRecord;
  readonly perUser: number | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

/** Claims one admission takes at most (one INSERT of that many rows). */
const MAX_ADMITTED_AT_ONCE = 500;

/**
 * msr.session as the shared list of active sessions: a session holds a slot while its lease is
 * renewed by its server; a crashed server's sessions lapse when their leases run out.
 */
export class SessionRegistry {
  private waiting: PendingClaim[] = [];
  private admitting = false;

  constructor(
    private readonly pool: Pool,
    private readonly serverId: string,
    private readonly maxActive: () => number,
    readonly leaseMs: number,
  ) {}

  /**
   * Takes a slot for a new session, or throws SessionLimitError when all are taken or, with
   * `perUser`, when its owner already holds that many. Claims made while an admission is under
   * way are admitted together by the next one, in the order they came.
   */
  claim(session: SessionRecord, perUser?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ session, perUser, resolve, reject });
      if (!this.admitting) void this.admitWaiting();
    });
  }

  /**
   * Admissions one after another, each taking every claim waiting: one transaction, one lock and
   * one count however many sessions open at once (a team opening one incident).
   */
  private async admitWaiting(): Promise<void> {
    this.admitting = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, MAX_ADMITTED_AT_ONCE);
        try {
          const refusals = await this.admit(batch);
          batch.forEach((claim, i) => (refusals[i] ? claim.reject(refusals[i]) : claim.resolve()));
        } catch (err) {
          for (const claim of batch) claim.reject(err);
        }
      }
    } finally {
      this.admitting = false;
    }
  }

  /** Admits what the cap and each owner's share allow, in order; the refusals by position. */
  private admit(batch: readonly PendingClaim[]): Promise<(SessionLimitError | undefined)[]> {
    return inTransaction(this.pool, async (client) => {
      await client.query('select pg_advisory_xact_lock($1)', [AdvisoryLock.SESSION_ADMISSION]);
      const { rows } = await client.query<{ owner: string | null; n: number }>(
        `select owner, count(*)::int as n from msr.session where ${ACTIVE_SESSION} group by owner`,
      );
      const byOwner = new Map(rows.map((r) => [r.owner, r.n]));
      let active = rows.reduce((n, r) => n + r.n, 0);
      const admitted: SessionRecord[] = [];
      const refusals = batch.map(({ session, perUser }) => {
        if (active >= this.maxActive()) {
          return new SessionLimitError(`all ${this.maxActive()} session slots are in use`);
        }
        const owned = byOwner.get(session.owner) ?? 0;
        if (perUser !== undefined && session.owner !== null && owned >= perUser) {
          return new SessionLimitError(
            `user ${session.owner} already has ${perUser} active sessions, the most one user may have`,
            true,
          );
        }
        active += 1;
        byOwner.set(session.owner, owned + 1);
        admitted.push(session);
        return undefined;
      });
      if (admitted.length > 0) {
        await client.query(
          `insert into msr.session (id, owner, server_id, range_from, range_to, filter, position, speed, playing, lease_until, shared_with)
           select u.id, u.owner, $2, ${sqlAt('u.range_from')}, ${sqlAt('u.range_to')}, u.filter,
                  ${sqlAt('u.position')}, u.speed, u.playing, now() + $3 * interval '1 millisecond', u.shared_with
             from jsonb_to_recordset($1::jsonb) as u(id uuid, owner text, range_from bigint, range_to bigint,
                  filter jsonb, position bigint, speed float8, playing boolean, shared_with text[])`,
          [
            JSON.stringify(
              admitted.map((session) => ({
                id: session.id,
                owner: session.owner,
                range_from: session.from,
                range_to: session.to,
                filter: session.filter,
                position: session.position,
                speed: encodeSpeed(session.speed),
                playing: session.playing,
                shared_with: session.sharedWith,
              })),
            ),
            this.serverId,
            this.leaseMs,
          ],
        );
      }
      return refusals;
    });
  }

  /** Extends the leases of this server's sessions and records where each one is. */
  async renew(states: readonly SessionPosition[], leaseMs = this.leaseMs): Promise<void> {
    if (states.length === 0) return;
    await this.pool.query(
      `update msr.session s
          set lease_until = now() + $5 * interval '1 millisecond',
              position = ${sqlAt('u.position')},
              speed = u.speed, playing = u.playing
         from unnest($1::uuid[], $2::bigint[], $3::float8[], $4::boolean[]) as u(id, position, speed, playing)
        where s.id = u.id and s.server_id = $6 and s.closed_at is null`,
      [
        states.map((s) => s.id),
        states.map((s) => s.position),
        states.map((s) => encodeSpeed(s.speed)),
        states.map((s) => s.playing),
        leaseMs,
        this.serverId,
      ],
    );
  }

  /**
   * Leaves sessions for another server to adopt (shutdown): their slots stop counting at once, and
   * for one lease period `attach` on any server resumes them where they were.
   */
  async handOver(states: readonly SessionPosition[]): Promise<void> {
    await this.renew(states, 0);
  }

  async release(id: string): Promise<void> {
    await this.pool.query(`update msr.session set closed_at = now() where id = $1 and closed_at is null`, [
      id,
    ]);
  }

  /** Who an active session belongs to, read without taking it over; null when there is none. */
  async owners(id: string): Promise<{ owner: string | null; sharedWith: string[] } | null> {
    const { rows } = await this.pool.query<{ owner: string | null; shared_with: string[] }>(
      `select owner, shared_with from msr.session
        where id = $1 and closed_at is null and lease_until > now() - $2 * interval '1 millisecond'`,
      [id, this.leaseMs],
    );
    return rows[0] ? { owner: rows[0].owner, sharedWith: rows[0].shared_with } : null;
  }

  /**
   * Where an active session is played: by a live server (its lease runs), or left behind by one that
   * shut down or crashed (lease lapsed less than a lease period ago, so it may be taken over).
   */
  async holder(id: string): Promise<{ serverId: string; live: boolean } | null> {
    const { rows } = await this.pool.query<{ server_id: string; live: boolean }>(
      `select server_id, lease_until > now() as live from msr.session
        where id = $1 and closed_at is null and lease_until > now() - $2 * interval '1 millisecond'`,
      [id, this.leaseMs],
    );
    return rows[0] ? { serverId: rows[0].server_id, live: rows[0].live } : null;
  }

  /**
   * Takes over a session another server held (it shut down or crashed: its lease has lapsed), so a
   * client can resume it here; null when there is no such session. A session whose server still
   * renews its lease is never taken: two servers would play it, and its slot would count once.
   */
  async adopt(id: string): Promise<SessionRecord | null> {
    const { rows } = await this.pool.query<{
      id: string;
      owner: string | null;
      shared_with: string[];
      range_from: string;
      range_to: string;
      filter: EntityFilter;
      position: string;
      speed: number;
      playing: boolean;
    }>(
      `update msr.session set server_id = $2, lease_until = now() + $3 * interval '1 millisecond'
        where id = $1 and closed_at is null and lease_until <= now()
          and lease_until > now() - $3 * interval '1 millisecond'
        returning id, owner, shared_with, ${sqlMicros('range_from')} as range_from, ${sqlMicros('range_to')} as range_to, filter,
                  ${sqlMicros('position')} as position, speed, playing`,
      [id, this.serverId, this.leaseMs],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      id: row.id,
      owner: row.owner,
      sharedWith: row.shared_with,
      from: Number(row.range_from),
      to: Number(row.range_to),
      filter: row.filter,
      position: Number(row.position),
      speed: decodeSpeed(row.speed),
      playing: row.playing,
    };
  }

  /** Sessions holding a slot across all servers. */
  async activeCount(): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      `select count(*)::int as n from msr.session where ${ACTIVE_SESSION}`,
    );
    return rows[0]!.n;
  }
}

// 'max' is stored as an infinite speed, so the column stays a plain number.
const encodeSpeed = (speed: Speed) => (speed === 'max' ? 'Infinity' : speed === '-max' ? '-Infinity' : speed);
const decodeSpeed = (speed: number): Speed =>
  speed === Infinity ? 'max' : speed === -Infinity ? '-max' : speed;
