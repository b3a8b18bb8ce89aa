import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { ReplayRequestError, type ReplayClient } from '@msr/protocol';
import { demoLive } from '../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { connect } from '../support/replay.js';

// AUTH_MODE=jwt against a local JWKS server (an OpenID Connect identity service's key endpoint):
// every way a token can fail gets its own code over REST and over the replay socket, keys rotate,
// sessions belong to their subject, administrators may do more, and the server stays up.

const ISSUER = 'https://id.example/realms/ops';
const AUDIENCE = 'msr';

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

describe('JWT authentication and session ownership', () => {
  let db: TestDatabase;
  let app: App;
  let jwks: Server;
  let published: Key[];
  let key1: Key;
  let env: Record<string, string>;
  const clients: ReplayClient[] = [];

  const token = async (
    sub: string,
    options: {
      key?: Key;
      kid?: string;
      iss?: string;
      aud?: string;
      exp?: number;
      nbf?: number;
      roles?: string[];
    } = {},
  ) => {
    const key = options.key ?? key1;
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ realm_access: { roles: options.roles ?? [] } })
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? key.kid })
      .setSubject(sub)
      .setIssuer(options.iss ?? ISSUER)
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuedAt(now - 60)
      .setExpirationTime(options.exp ?? now + 300);
    if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
    return jwt.sign(key.privateKey);
  };

  const get = async (path: string, bearer?: string) => {
    const response = await fetch(`http://127.0.0.1:${app.port}${path}`, {
      headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
    });
    return { status: response.status, body: await response.json() };
  };

  const socket = async (bearer?: string) => {
    const client = await connect(app.port, bearer === undefined ? {} : { token: bearer });
    clients.push(client);
    return client;
  };

  /** A socket whose token is refused is upgraded, then closed with 4001 and the code as reason. */
  const refusedOnSocket = async (bearer?: string) => {
    const client = await socket(bearer);
    const deadline = Date.now() + 5_000;
    while (!client.lastClose && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return client.lastClose;
  };

  beforeAll(async () => {
    key1 = await newKey('key-1');
    published = [key1];
    jwks = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    db = await createTestDatabase();
    env = {
      DATABASE_URL: db.url,
      PORT: '0',
      DEMO: 'true',
      DB_POOL_SIZE: '3',
      MAX_ACTIVE_SESSIONS: '10',
      AUTH_MODE: 'jwt',
      AUTH_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
      AUTH_CLOCK_TOLERANCE_S: '5',
      AUTH_JWKS_COOLDOWN_MS: '0',
    };
    app = await createApp(loadConfig(env), { log: createLogger('silent'), demoHistoryMs: 10 * 60_000 });
    await demoLive(app);
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await app?.stop();
    await db?.drop();
    jwks?.close();
  });

  it('accepts a valid token, and one expired within the clock tolerance', async () => {
    expect((await get('/api/v1/availability', await token('alice'))).status).toBe(200);
    const justExpired = await token('alice', { exp: Math.floor(Date.now() / 1000) - 2 });
    expect((await get('/api/v1/availability', justExpired)).status).toBe(200);
  });

  it('refuses each bad token with its own code over REST and over the replay socket', async () => {
    const now = Math.floor(Date.now() / 1000);
    const impostor = await newKey('key-1'); // the published key id, another private key
    const cases: [string, string | undefined][] = [
      ['TOKEN_MISSING', undefined],
      ['TOKEN_MALFORMED', 'not.a.jwt'],
      ['TOKEN_EXPIRED', await token('alice', { exp: now - 60 })],
      ['TOKEN_NOT_YET_VALID', await token('alice', { nbf: now + 600 })],
      ['TOKEN_WRONG_ISSUER', await token('alice', { iss: 'https://evil.example' })],
      ['TOKEN_WRONG_AUDIENCE', await token('alice', { aud: 'other-service' })],
      ['TOKEN_BAD_SIGNATURE', await token('alice', { key: impostor })],
      ['TOKEN_UNKNOWN_KEY', await token('alice', { kid: 'key-404' })],
    ];
    for (const [code, bearer] of cases) {
      const rest = await get('/api/v1/availability', bearer);
      expect([code, rest.status, rest.body.code]).toEqual([code, 401, code]);
      expect(await refusedOnSocket(bearer)).toEqual({ code: 4001, reason: code });
    }
    // Public endpoints need no token; the server is still up.
    expect((await get('/healthz')).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${app.port}/metrics`)).status).toBe(200);
  });

  it('answers alg none and HMAC-with-the-public-key tokens 401 TOKEN_MALFORMED, never AUTH_UNAVAILABLE', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'mallory', iss: ISSUER, aud: AUDIENCE, exp: now + 300, iat: now };
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${part({ alg: 'none', typ: 'JWT', kid: key1.kid })}.${part(claims)}.`;
    // The published RSA key's JWK as an HMAC secret: the classic algorithm-confusion attack.
    const hmac = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: key1.kid })
      .sign(new TextEncoder().encode(JSON.stringify(key1.jwk)));
    for (const bearer of [unsigned, hmac]) {
      const rest = await get('/api/v1/availability', bearer);
      expect([rest.status, rest.body.code]).toEqual([401, 'TOKEN_MALFORMED']);
      expect(await refusedOnSocket(bearer)).toEqual({ code: 4001, reason: 'TOKEN_MALFORMED' });
    }
  });

  it('closes a socket with 4001 TOKEN_EXPIRED when its token expires', async () => {
    // Expires in 2 s; with the 5 s clock tolerance the socket is closed about 7 s after.
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    const client = await socket(await token('alice', { exp: expiresAt }));
    await client.open({ from: Date.now() - 5 * 60_000, to: Date.now() - 60_000 });
    const deadline = Date.now() + 15_000;
    while (!client.lastClose && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(client.lastClose).toEqual({ code: 4001, reason: 'TOKEN_EXPIRED' });
    expect(Date.now()).toBeGreaterThanOrEqual((expiresAt + 5) * 1000);
  });

  it('follows a key rotation, and says AUTH_UNAVAILABLE when the keys cannot be fetched', async () => {
    const key2 = await newKey('key-2');
    published = [key2];
    expect((await get('/api/v1/availability', await token('alice', { key: key2 }))).status).toBe(200);
    expect((await get('/api/v1/availability', await token('alice'))).body.code).toBe('TOKEN_UNKNOWN_KEY');
    published = [key1, key2];
    expect((await get('/api/v1/availability', await token('alice'))).status).toBe(200);

    const down = createServer((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    const port = (jwks.address() as AddressInfo).port;
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
    await new Promise<void>((resolve) => down.listen(port, '127.0.0.1', resolve));
    try {
      const unknown = await get('/api/v1/availability', await token('alice', { kid: 'key-3' }));
      expect([unknown.status, unknown.body.code]).toEqual([503, 'AUTH_UNAVAILABLE']);
      // Known keys stay cached: valid tokens still work while the identity service is down.
      expect((await get('/api/v1/availability', await token('alice'))).status).toBe(200);
    } finally {
      await new Promise<void>((resolve) => down.close(() => resolve()));
      jwks = createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
      });
      await new Promise<void>((resolve) => jwks.listen(port, '127.0.0.1', resolve));
    }
  });

  it('keeps each session to its owner, those it is shared with, and administrators', async () => {
    const { earliest, latest } = (await get('/api/v1/availability', await token('alice'))).body;
    const alice = await socket(await token('alice'));
    const opened = await alice.open({ from: earliest, to: latest, at: latest, sharedWith: ['carol'] });

    const bob = await socket(await token('bob'));
    const refused = await bob.attach(opened.session).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ReplayRequestError);
    expect((refused as ReplayRequestError).code).toBe('FORBIDDEN');
    const carol = await socket(await token('carol'));
    expect((await carol.attach(opened.session)).session).toBe(opened.session);
    const admin = await socket(await token('root', { roles: ['msr-admin'] }));
    expect((await admin.attach(opened.session)).session).toBe(opened.session);

    const listed = async (bearer: string) =>
      (await get('/api/v1/sessions', bearer)).body.sessions.map((s: { session: string }) => s.session);
    expect(await listed(await token('bob'))).not.toContain(opened.session);
    expect(await listed(await token('alice'))).toContain(opened.session);
    expect(await listed(await token('root', { roles: ['msr-admin'] }))).toContain(opened.session);
    const one = await get(`/api/v1/sessions/${opened.session}`, await token('alice'));
    expect(one.body).toMatchObject({ owner: 'alice', sharedWith: ['carol'] });
    const bobGet = await get(`/api/v1/sessions/${opened.session}`, await token('bob'));
    expect([bobGet.status, bobGet.body.code]).toEqual([403, 'FORBIDDEN']);

    const bobDelete = await fetch(`http://127.0.0.1:${app.port}/api/v1/sessions/${opened.session}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${await token('bob')}` },
    });
    expect(bobDelete.status).toBe(403);
    expect((await bobDelete.json()).code).toBe('FORBIDDEN');

    // On another server too, and the refused attach does not take the session over.
    const other = await createApp(loadConfig({ ...env, DEMO: 'false' }), { log: createLogger('silent') });
    try {
      const bobThere = await connect(other.port, { token: await token('bob') });
      clients.push(bobThere);
      const there = await bobThere.attach(opened.session).catch((err: unknown) => err);
      expect((there as ReplayRequestError).code).toBe('FORBIDDEN');
      const { rows } = await db.pool.query(`select server_id from msr.session where id = $1`, [
        opened.session,
      ]);
      expect(rows[0].server_id).toBe(app.sessions.serverId);
    } finally {
      await other.stop();
    }
  });

  it('holds each user to a share of the session slots; administrators are exempt', async () => {
    // MAX_ACTIVE_SESSIONS=10: one user may hold 5 (by default half) across servers.
    const open = async (bearer: string) => {
      const response = await fetch(`http://127.0.0.1:${app.port}/api/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ from: Date.now() - 5 * 60_000, to: Date.now() - 60_000 }),
      });
      const body = await response.json();
      return {
        status: response.status,
        code: body.code as string | undefined,
        session: body.session as string,
      };
    };
    const dave = await token('dave');
    const opened = [];
    for (let i = 0; i < 5; i++) opened.push(await open(dave));
    expect(opened.map((o) => o.status)).toEqual([201, 201, 201, 201, 201]);
    expect(await open(dave)).toMatchObject({ status: 429, code: 'USER_SESSION_LIMIT' });
    // Other users still get slots.
    const erin = await open(await token('erin'));
    expect(erin.status).toBe(201);
    const root = await token('root', { roles: ['msr-admin'] });
    for (const o of [...opened, erin]) {
      await fetch(`http://127.0.0.1:${app.port}/api/v1/sessions/${o.session}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${root}` },
      });
    }
  });

  it('lets only administrators ask for snapshots', async () => {
    const post = async (bearer: string) => {
      const response = await fetch(`http://127.0.0.1:${app.port}/api/v1/snapshots`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ source: 'gis_server', collections: ['gis.bookmark'] }),
      });
      return { status: response.status, code: (await response.json()).code };
    };
    expect(await post(await token('bob'))).toEqual({ status: 403, code: 'FORBIDDEN' });
    // Past the guard, this server has no Kafka to send the signal to.
    expect(await post(await token('root', { roles: ['msr-admin'] }))).toEqual({
      status: 503,
      code: 'NOT_CONFIGURED',
    });
  });
});
