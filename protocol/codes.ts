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
  /** A time outside the available window or the session's range. */
  OUT_OF_RANGE: 'OUT_OF_RANGE',
  /** `from` after `to`, or a range longer than MAX_PLAYBACK_RANGE. */
  BAD_RANGE: 'BAD_RANGE',
  /** Speed outside the documented range. */
  BAD_SPEED: 'BAD_SPEED',
  /** Missing, invalid or expired credentials. */
  UNAUTHORIZED: 'UNAUTHORIZED',
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

export const CloseCode = {
  /** The client closed, or the session ended by `close`. Do not reconnect. */
  NORMAL: 1000,
  /** The server is going away (shutdown). Reconnect and `attach` with the resume token. */
  GOING_AWAY: 1001,
  /** Protocol violation the server cannot answer on (unsupported subprotocol). Do not reconnect as is. */
  PROTOCOL_ERROR: 1002,
  /** The connection broke without a close frame (network, or a message over 1 MiB). Reconnect. */
  ABNORMAL: 1006,
  /** Credentials missing or rejected. Reconnect only with a new token. */
  UNAUTHORIZED: 4001,
  /** The client did not read its frames for too long (backpressure limit). Reconnect and resume. */
  TOO_SLOW: 4008,
  /** The session expired or was closed elsewhere. Open a new session. */
  SESSION_GONE: 4004,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
