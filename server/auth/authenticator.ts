import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ErrorCode } from '@msr/protocol/codes';
import type { AuthConfig } from '../config.js';
import { ANONYMOUS, type Principal } from '../principal.js';

export class AuthError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** 401 for credentials, 503 when the identity service cannot be reached. */
    readonly status: 401 | 503 = 401,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** Where a request carries its token: `Authorization: Bearer`, or `access_token` for browsers' WebSockets. */
export function tokenOf(
  headers: Readonly<Record<string, string>>,
  query: URLSearchParams,
): string | undefined {
  const header = headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
    return match?.[1] ?? '';
  }
  return query.get('access_token') ?? undefined;
}

export interface Authenticator {
  authenticate(token: string | undefined): Promise<Principal>;
}

export function createAuthenticator(config: AuthConfig): Authenticator {
  return config.mode === 'none' ? { authenticate: async () => ANONYMOUS } : new JwtAuthenticator(config);
}

/**
 * Verifies access tokens from an OpenID Connect identity service (Keycloak-style) against its
 * JWKS: signature, issuer, audience, expiry and not-before with a clock tolerance. Keys are
 * cached; a token naming an unknown key makes jose fetch the JWKS again (key rotation), at most
 * once per cooldown.
 */
class JwtAuthenticator implements Authenticator {
  private readonly jwks: JWTVerifyGetKey;

  constructor(private readonly config: AuthConfig) {
    const remote = createRemoteJWKSet(new URL(config.jwksUrl!), {
      cooldownDuration: config.jwksCooldownMs,
      timeoutDuration: 5_000,
    });
    // A key lookup that fails for any reason but the token's own (no such key, an algorithm no
    // published key has: alg none, HS256 with the public key) means the keys could not be had.
    this.jwks = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        if (
          err instanceof errors.JWKSNoMatchingKey ||
          err instanceof errors.JWKSMultipleMatchingKeys ||
          err instanceof errors.JOSENotSupported
        )
          throw err;
        throw new AuthError(
          ErrorCode.AUTH_UNAVAILABLE,
          `the identity service's keys cannot be fetched: ${(err as Error).message}`,
          503,
        );
      }
    };
  }

  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === undefined) throw new AuthError(ErrorCode.TOKEN_MISSING, 'an access token is required');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: this.config.issuer,
        audience: [...this.config.audience!],
        clockTolerance: this.config.clockToleranceS,
        requiredClaims: ['sub', 'exp'],
        // An identity service signs with asymmetric keys: 'none' and HMAC tokens are refused
        // before any key is looked up.
        algorithms: SIGNING_ALGORITHMS,
      }));
    } catch (err) {
      throw rejection(err);
    }
    const roles = claimAt(payload, this.config.rolesClaim);
    return {
      subject: payload.sub!,
      admin: Array.isArray(roles) && roles.includes(this.config.adminRole),
      expiresAt: (payload.exp! + this.config.clockToleranceS) * 1000,
    };
  }
}

function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const SIGNING_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** Each way a token can fail, as its own stable code. */
function rejection(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired)
    return new AuthError(ErrorCode.TOKEN_EXPIRED, 'the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return new AuthError(ErrorCode.TOKEN_NOT_YET_VALID, 'the token is not valid yet');
      case 'iss':
        return new AuthError(ErrorCode.TOKEN_WRONG_ISSUER, 'the token comes from another issuer');
      case 'aud':
        return new AuthError(ErrorCode.TOKEN_WRONG_AUDIENCE, 'the token is meant for another audience');
      default:
        return new AuthError(ErrorCode.TOKEN_MALFORMED, `the token's ${err.claim} claim is invalid`);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthError(ErrorCode.TOKEN_BAD_SIGNATURE, 'the token signature does not verify');
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new AuthError(
      ErrorCode.TOKEN_UNKNOWN_KEY,
      'the token names a key the identity service does not publish',
    );
  }
  if (err instanceof errors.JOSEError)
    return new AuthError(ErrorCode.TOKEN_MALFORMED, `the token is malformed: ${err.message}`);
  return new AuthError(
    ErrorCode.AUTH_UNAVAILABLE,
    `could not verify the token: ${(err as Error).message}`,
    503,
  );
}
