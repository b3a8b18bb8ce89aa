/**
 * The stable catalogue of error codes (in `error` messages and HTTP bodies) and WebSocket close
 * codes. PROTOCOL.md documents each; never change a meaning, only add.
 */
export const ErrorCode = {
  /** Not valid JSON/msgpack, not an object, or a field missing or of the wrong type. */
  BAD_MESSAGE: 'BAD_MESSAGE',
  /** `type` is not one this protocol version knows. */
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  /** Over the size limit for one client message. */
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  /** A control sent before `open` or `attach`. */
  NOT_OPEN: 'NOT_OPEN',
  /** `open` or `attach` on a socket that already has a session. */
  ALREADY_OPEN: 'ALREADY_OPEN',
  /** MAX_ACTIVE_SESSIONS sessions are active across all servers. */
  SESSION_LIMIT: 'SESSION_LIMIT',
  /** No such session (never existed, closed or expired). */
  SESSION_NOT_FOUND: 'SESSION_NOT_FOUND',
  /** The user already holds MAX_SESSIONS_PER_USER active sessions (administrators are exempt). */
  USER_SESSION_LIMIT: 'USER_SESSION_LIMIT',
  /** MAX_SOCKETS sockets on this server (close 1013), or MAX_SOCKETS_PER_SESSION on one session. */
  SOCKET_LIMIT: 'SOCKET_LIMIT',
  /** MAX_STATE_REQUESTS /api/v1/state calls are running; retry shortly (HTTP 429). */
  BUSY: 'BUSY',
  /** `attach` to a session another live server is playing: connect to that server (route by session). */
  SESSION_ELSEWHERE: 'SESSION_ELSEWHERE',
  /** A time outside the available window or the session's range. */
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  /** `from` after `to`, or a range longer than MAX_PLAYBACK_RANGE. */
  BAD_RANGE: 'BAD_RANGE',
  /** Speed outside the documented range. */
  BAD_SPEED: 'BAD_SPEED',
  /** Missing, invalid or expired credentials. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** No access token (Authorization: Bearer, or access_token for WebSockets) where one is required. */
  TOKEN_MISSING: 'TOKEN_MISSING',
  /** The token is not a well-formed signed JWT, or lacks sub/exp. */
  TOKEN_MALFORMED: 'TOKEN_MALFORMED',
  /** The token's exp has passed (beyond the clock tolerance). */
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  /** The token's nbf is still ahead (beyond the clock tolerance). */
  TOKEN_NOT_YET_VALID: 'TOKEN_NOT_YET_VALID',
  /** The token's iss is not AUTH_ISSUER. */
  TOKEN_WRONG_ISSUER: 'TOKEN_WRONG_ISSUER',
  /** The token's aud does not include AUTH_AUDIENCE. */
  TOKEN_WRONG_AUDIENCE: 'TOKEN_WRONG_AUDIENCE',
  /** The signature does not verify with the key the token names. */
  TOKEN_BAD_SIGNATURE: 'TOKEN_BAD_SIGNATURE',
  /** The token names a key id the identity service does not publish (even after a refetch). */
  TOKEN_UNKNOWN_KEY: 'TOKEN_UNKNOWN_KEY',
  /** The identity service's keys cannot be fetched; retry later. */
  AUTH_UNAVAILABLE: 'AUTH_UNAVAILABLE',
  /** Valid credentials without the right to do this. */
  FORBIDDEN: 'FORBIDDEN',
  /** The server is shutting down; reconnect (elsewhere) and resume. */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** The database or another dependency is unavailable; retry later. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** A fault on the server; the session may continue. */
  INTERNAL: 'INTERNAL',
  /** The request needs a part this server runs without (snapshot signals without KAFKA_BROKERS). */
  NOT_CONFIGURED: 'NOT_CONFIGURED',
  /** No such HTTP route. */
  NOT_FOUND: 'NOT_FOUND',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A going-away close (1001) reason `resume:<token>`: pass the token to `attach` as `resume`. */
export const RESUME_PREFIX = 'resume:';

export const CloseCode = {
  /** The client closed, or the session ended by `close`. Do not reconnect. */
  NORMAL: 1000,
  /** The server is going away (shutdown). Reconnect and `attach` with the resume token. */
  GOING_AWAY: 1001,
  /** Protocol violation the server cannot answer on (unsupported subprotocol). Do not reconnect as is. */
  PROTOCOL_ERROR: 1002,
  /** The connection broke without a close frame (network, or a message over 1 MiB). Reconnect. */
  ABNORMAL: 1006,
  /** The server has MAX_SOCKETS connections (reason SOCKET_LIMIT). Reconnect later, with backoff. */
  TRY_AGAIN_LATER: 1013,
  /** Credentials missing or rejected. Reconnect only with a new token. */
  UNAUTHORIZED: 4001,
  /** The client did not read its frames for too long (backpressure limit). Reconnect and resume. */
  TOO_SLOW: 4008,
  /** The session expired or was closed elsewhere. Open a new session. */
  SESSION_GONE: 4004,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
