import type { Logger } from 'pino';
import { MAX_CLIENT_MESSAGE_BYTES } from '@msr/protocol/wire';
import { SUBPROTOCOL_JSON, SUBPROTOCOLS, type Subprotocol } from '@msr/protocol/messages';
import { CloseCode, ErrorCode } from '@msr/protocol/codes';
import { AuthError, tokenOf, type Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../principal.js';
import type { Metrics } from '../metrics.js';
import { ReplayConnection } from '../replay/connection.js';
import { encodeOutgoing, type OutgoingMessage } from '../replay/outgoing.js';
import type { SessionSink } from '../replay/session.js';
import type { SessionManager } from '../replay/session-manager.js';
import { decodeClientMessage } from './decode-client.js';
import type { TemplatedApp, WebSocket, WebSocketBehavior } from './uws.js';

export const REPLAY_PATH = '/v1/replay';
const FORCE_CLOSE_AFTER_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

interface SocketData {
  subprotocol: Subprotocol;
  principal?: Principal;
  /** The token was refused: the socket is told why (close 4001, the code as reason) and closed. */
  refused?: AuthError;
  connection?: ReplayConnection;
  sink?: UwsSink;
  /** Closes the socket when its token expires. */
  expiry?: NodeJS.Timeout;
}

/** A uWebSockets.js socket as a session sink; sends after close are dropped, not thrown. */
class UwsSink implements SessionSink {
  open = true;
  /** uWebSockets.js reported the socket closed. */
  gone = false;
  constructor(
    private readonly ws: WebSocket<SocketData>,
    private readonly subprotocol: Subprotocol,
    private readonly metrics?: Metrics,
  ) {}

  send(message: OutgoingMessage): void {
    if (!this.open) return;
    const data = encodeOutgoing(message, this.subprotocol);
    this.ws.send(data, typeof data !== 'string');
    this.metrics?.bytesSent.inc(typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength);
  }

  buffered(): number {
    return this.open ? this.ws.getBufferedAmount() : 0;
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    // The close frame queues behind unread data; a client that reads nothing never gets it, so
    // the connection is cut after a grace period.
    this.ws.end(code, reason);
    setTimeout(() => {
      if (!this.gone) this.ws.close();
    }, FORCE_CLOSE_AFTER_MS).unref();
  }
}

/** The first subprotocol the client offers that we speak; JSON when it offers none. */
export function chooseSubprotocol(header: string): Subprotocol | null {
  const offered = header
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (offered.length === 0) return SUBPROTOCOL_JSON;
  return (
    (offered.find((p) => (SUBPROTOCOLS as readonly string[]).includes(p)) as Subprotocol | undefined) ?? null
  );
}

export interface SocketLimits {
  /** Sockets this server keeps at once; one more is upgraded and closed with 1013 SOCKET_LIMIT. */
  readonly maxSockets: number;
  /** Unread bytes a socket without a session may hold before it is closed with 4008. */
  readonly unboundBufferBytes: number;
}

/** uWebSockets.js's limits for the replay socket. */
const SOCKET_SETTINGS = {
  // Up to 4x the message limit is read and answered with MESSAGE_TOO_LARGE; beyond it uWebSockets.js
  // drops the connection without reading further.
  maxPayloadLength: 4 * MAX_CLIENT_MESSAGE_BYTES,
  // The session layer watches buffered bytes itself (coalescing, then 4008) and a socket without
  // a session is closed past UNBOUND_SOCKET_BUFFER_BYTES; this is only the last resort.
  maxBackpressure: 64 * 1024 * 1024,
  closeOnBackpressureLimit: 1,
  idleTimeout: 120,
  sendPingsAutomatically: true,
} as const;

export function registerReplaySocket(
  app: TemplatedApp,
  manager: SessionManager,
  authenticator: Authenticator,
  limits: SocketLimits,
  log: Logger,
  metrics?: Metrics,
): void {
  let sockets = 0;
  app.ws<SocketData>(REPLAY_PATH, {
    ...SOCKET_SETTINGS,
    upgrade: authenticatedUpgrade(authenticator),
    open: (ws) => {
      const data = ws.getUserData();
      sockets++;
      data.sink = new UwsSink(ws, data.subprotocol, metrics);
      const refusal: [number, string] | undefined = data.refused
        ? [CloseCode.UNAUTHORIZED, data.refused.code]
        : sockets > limits.maxSockets
          ? [CloseCode.TRY_AGAIN_LATER, ErrorCode.SOCKET_LIMIT]
          : undefined;
      if (refusal) return data.sink.close(...refusal);
      data.connection = new ReplayConnection(
        manager,
        data.sink,
        log,
        data.principal,
        limits.unboundBufferBytes,
      );
      closeAtTokenExpiry(data);
    },
    message: (ws, raw) => {
      const data = ws.getUserData();
      if (!data.connection) return;
      // uWebSockets.js reuses `raw` after this callback: decode now.
      const decoded = decodeClientMessage(new Uint8Array(raw), data.subprotocol);
      if (!decoded.ok) {
        data.connection!.reject(decoded.code, decoded.message, decoded.rid);
        return;
      }
      void data.connection!.receive(decoded.message);
    },
    close: (ws) => {
      const data = ws.getUserData();
      sockets--;
      clearTimeout(data.expiry);
      if (data.sink) {
        data.sink.open = false;
        data.sink.gone = true;
      }
      data.connection?.closed();
    },
  });
}

/**
 * The upgrade: a subprotocol we speak, then the token checked (asynchronously: the request object
 * dies with the callback). A refused token still upgrades, to be closed with its reason.
 */
function authenticatedUpgrade(authenticator: Authenticator): WebSocketBehavior<SocketData>['upgrade'] {
  return (res, req, context) => {
    const subprotocol = chooseSubprotocol(req.getHeader('sec-websocket-protocol'));
    if (!subprotocol) {
      res
        .writeStatus('400 Bad Request')
        .end(`unsupported subprotocol; use one of ${SUBPROTOCOLS.join(', ')}`);
      return;
    }
    // The request object dies with this callback; the token is checked asynchronously.
    const key = req.getHeader('sec-websocket-key');
    const extensions = req.getHeader('sec-websocket-extensions');
    const token = tokenOf(
      { authorization: req.getHeader('authorization') },
      new URLSearchParams(req.getQuery() ?? ''),
    );
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const upgrade = (data: SocketData) => {
      if (!aborted) res.cork(() => res.upgrade<SocketData>(data, key, subprotocol, extensions, context));
    };
    authenticator.authenticate(token).then(
      (principal) => upgrade({ subprotocol, principal }),
      (err: unknown) => {
        // Upgraded, then closed with the reason: browsers cannot read a refused upgrade's status.
        const refused =
          err instanceof AuthError
            ? err
            : new AuthError(ErrorCode.AUTH_UNAVAILABLE, (err as Error).message, 503);
        upgrade({ subprotocol, refused });
      },
    );
  };
}

/**
 * A socket lives no longer than the token it was opened with: at expiry it is closed with 4001
 * TOKEN_EXPIRED, and the client reconnects with a fresh token (ReplayClient's token function) and
 * attaches to its session again.
 */
function closeAtTokenExpiry(data: SocketData): void {
  const expiresAt = data.principal?.expiresAt;
  if (expiresAt === undefined) return;
  const expire = () => data.sink?.close(CloseCode.UNAUTHORIZED, ErrorCode.TOKEN_EXPIRED);
  // Node timers take at most ~24.8 days: a longer-lived token re-arms.
  const arm = () => {
    const wait = expiresAt - Date.now();
    data.expiry = setTimeout(wait < MAX_TIMER_MS ? expire : arm, Math.max(0, Math.min(wait, MAX_TIMER_MS)));
  };
  arm();
}
