import { STATUS_CODES } from 'node:http';
import type { Authenticator } from '../auth/authenticator.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, Route } from '../http/route.js';
import type { SessionManager } from '../replay/session-manager.js';
import { registerReplaySocket, type SocketLimits } from './replay-socket.js';
import {
  uws,
  type HttpRequest as UwsRequest,
  type HttpResponse as UwsResponse,
  type TemplatedApp,
  type us_listen_socket,
} from './uws.js';

/**
 * How long a streamed response waits for uWebSockets.js to report its socket writable before it
 * writes again anyway; doubled each time the wait ends that way, up to the maximum.
 */
const DRAIN_RECHECK_MS = 50;
const DRAIN_RECHECK_MAX_MS = 5_000;

const MAX_BODY_BYTES = 1024 * 1024;

/** `202 Accepted`: Node's table of reason phrases, so every status has one. */
const statusLine = (status: number) => `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;

/** The uWebSockets.js server: the replay socket and the HTTP routes, on one port. */
export class Transport {
  private readonly app: TemplatedApp = uws.App();
  private listenSocket: us_listen_socket | undefined;
  private boundPort = 0;

  constructor(private readonly log: Logger) {}

  get port(): number {
    return this.boundPort;
  }

  /** The replay WebSocket at /v1/replay; register it before the HTTP routes' catch-all. */
  addReplaySocket(
    manager: SessionManager,
    authenticator: Authenticator,
    limits: SocketLimits,
    metrics?: Metrics,
  ): void {
    registerReplaySocket(this.app, manager, authenticator, limits, this.log, metrics);
  }

  addRoutes(routes: readonly Route[]): void {
    for (const route of routes) {
      const serve = (res: UwsResponse, req: UwsRequest) => this.serve(route, res, req);
      if (route.method === 'get') this.app.get(route.path, serve);
      else if (route.method === 'post') this.app.post(route.path, serve);
      else if (route.method === 'put') this.app.put(route.path, serve);
      else this.app.del(route.path, serve);
    }
    this.app.any('/*', (res) => {
      res.cork(() =>
        writeResponse(res, { status: 404, body: { code: 'NOT_FOUND', message: 'no such route' } }),
      );
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (!socket) {
          reject(new Error(`could not listen on ${host}:${port} (address in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        this.boundPort = uws.us_socket_local_port(socket);
        resolve(this.boundPort);
      });
    });
  }

  /**
   * Stops accepting connections. Open ones are not cut here: the transport stops first (the
   * lifecycle stops in reverse order of start), then the session manager closes every replay
   * socket (1001 with a resume token); an HTTP response still streaming ends with its handler.
   */
  close(): void {
    if (this.listenSocket) {
      uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
  }

  private serve(route: Route, res: UwsResponse, req: UwsRequest): void {
    const copied = copyRequest(route, req);
    const reply = new ReplyState(res);
    const respond = (response: HttpResponse) => {
      if (reply.aborted) {
        closeUnread(response);
        return;
      }
      if (response.stream) {
        void this.stream(res, response, reply);
        return;
      }
      res.cork(() => writeResponse(res, response));
    };
    readBody(res, route.method === 'get' || route.method === 'delete', (body) => {
      if (body === undefined) {
        respond({
          status: 413,
          body: { code: 'PAYLOAD_TOO_LARGE', message: `body over ${MAX_BODY_BYTES} bytes` },
        });
        return;
      }
      const request: HttpRequest = { method: route.method, ...copied, body };
      Promise.resolve()
        .then(() => route.handler(request))
        .then(respond, (err: unknown) => {
          this.log.error({ err, path: copied.path }, 'HTTP handler failed');
          respond({ status: 500, body: { code: 'INTERNAL', message: 'internal error' } });
        });
    });
  }

  /** Writes a streamed body piece by piece, waiting whenever the socket's buffer is full. */
  private async stream(res: UwsResponse, response: HttpResponse, reply: ReplyState): Promise<void> {
    res.cork(() => {
      res.writeStatus(statusLine(response.status));
      for (const [key, value] of Object.entries(response.headers ?? {})) res.writeHeader(key, value);
    });
    // A client that really stopped reading gets a piece ever more rarely: what is buffered for it
    // grows by one piece per doubling of the wait, not by one piece every 50 ms.
    let patience = DRAIN_RECHECK_MS;
    try {
      for await (const piece of response.stream!) {
        if (reply.aborted) return;
        let written = true;
        res.cork(() => (written = res.write(piece)));
        if (written) patience = DRAIN_RECHECK_MS;
        else if (await reply.drained(patience)) patience = DRAIN_RECHECK_MS;
        else patience = Math.min(2 * patience, DRAIN_RECHECK_MAX_MS);
      }
      if (!reply.aborted) res.cork(() => res.end());
    } catch (err) {
      // The status is out already: the client sees a cut-off body rather than a complete one.
      this.log.error({ err }, 'streamed HTTP response failed');
      if (!reply.aborted) res.close();
    }
  }
}

/** What a handler needs of the request, copied: uWebSockets.js request objects die when the route callback returns. */
function copyRequest(route: Route, req: UwsRequest): Omit<HttpRequest, 'method' | 'body'> {
  const headers: Record<string, string> = {};
  req.forEach((key, value) => {
    headers[key] = value;
  });
  return {
    path: req.getUrl(),
    query: new URLSearchParams(req.getQuery() ?? ''),
    headers,
    params: Array.from(
      { length: (route.path.match(/:/g) ?? []).length },
      (_, i) => req.getParameter(i) ?? '',
    ),
  };
}

/** Whether the client went away, and waiting for the socket to drain. */
class ReplyState {
  aborted = false;
  /** Wakes a streamed response waiting for the socket to drain. */
  private wake: (() => void) | undefined;

  constructor(private readonly res: UwsResponse) {
    res.onAborted(() => {
      this.aborted = true;
      this.wake?.();
    });
  }

  /**
   * Resolves true when the socket reports itself writable (or the request was aborted).
   * uWebSockets.js does not always call onWritable after a corked write said false: when the
   * socket took everything at uncork there is no backpressure left to drain, and a response
   * waiting only for that event waited forever (GET /api/v1/state hung with 256 KiB pieces). So
   * the wait also ends, with false, after `patienceMs`, and the next write says again whether to wait.
   */
  drained(patienceMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const done = (writable: boolean) => {
        clearTimeout(timer);
        resolve(writable);
      };
      const timer = setTimeout(() => done(false), patienceMs);
      this.wake = () => done(true);
      this.res.onWritable(() => {
        done(true);
        return true;
      });
    });
  }
}

/**
 * A response nobody will read: a stream's source (a database cursor) is closed. A generator runs
 * its cleanup only once started, hence the one step before ending it.
 */
function closeUnread(response: HttpResponse): void {
  if (!response.stream) return;
  const pieces = response.stream[Symbol.asyncIterator]();
  void pieces
    .next()
    .then(() => pieces.return?.())
    .catch(() => undefined);
}

function readBody(res: UwsResponse, skip: boolean, done: (body: Buffer | undefined) => void): void {
  if (skip) {
    done(Buffer.alloc(0));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  res.onData((chunk, isLast) => {
    if (!tooLarge) {
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      // uWebSockets.js reuses the chunk's memory after this callback: copy it.
      else chunks.push(Buffer.from(chunk.slice(0)));
    }
    if (isLast) done(tooLarge ? undefined : Buffer.concat(chunks));
  });
}

function writeResponse(res: UwsResponse, response: HttpResponse): void {
  res.writeStatus(statusLine(response.status));
  const headers = response.headers ?? {};
  for (const [key, value] of Object.entries(headers)) res.writeHeader(key, value);
  if (typeof response.body === 'string' || Buffer.isBuffer(response.body)) {
    res.end(response.body);
    return;
  }
  if (!('content-type' in headers)) res.writeHeader('content-type', 'application/json');
  res.end(response.body === undefined ? '' : JSON.stringify(response.body));
}
