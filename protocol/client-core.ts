import { encode, parse } from './codec.js';
import { CloseCode, ErrorCode, RESUME_PREFIX } from './codes.js';
import type {
  AnyServerMessage,
  Change,
  ClientMessage,
  OpenMessage,
  ServerMessage,
  Speed,
} from './messages.js';
import {
  groupsKeyframes,
  isMsgpack,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  type Subprotocol,
} from './wire.js';
import { deleteTable, entityKey } from './entity-key.js';

export { deleteTable, entityKey, splitEntityKey } from './entity-key.js';

/** The part of the WebSocket API the client needs (browsers' WebSocket, or the `ws` package in Node). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketFactory = (url: string, protocols: string[]) => WebSocketLike;

export interface ReplayClientOptions {
  /**
   * What to speak (default msr.v1.json). A v2 choice also offers its v1 twin, for servers older
   * than v2; the client's `subprotocol` says which the server took, and `state` is kept either way.
   */
  readonly subprotocol?: Subprotocol;
  /** How sockets are made; defaults to the global WebSocket (browsers, Node 22+), else `ws` (Node 20). */
  readonly webSocket?: WebSocketFactory;
  /** Reconnect and resume the session after a going-away, too-slow or broken connection. */
  readonly reconnect?: boolean;
  readonly requestTimeoutMs?: number;
  /**
   * Check every server message against its schema (ReplayClient from client.ts does, unless this
   * is false); off for speed, trusting the server. The core client (client-core.ts) never checks.
   */
  readonly validate?: boolean;
  /** An access token (AUTH_MODE=jwt), sent as access_token; a function is asked again on each reconnect. */
  readonly token?: string | (() => string | Promise<string>);
}

export class ReplayRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'ReplayRequestError';
  }
}

type Listener = (message: AnyServerMessage) => void;

/**
 * The socket's state as a user should hear of it: `reconnecting` after a close the client will
 * resume from (with the close code), `open` once it has, `closed` when it will not (the close
 * code and reason, or the last error after its reconnects ran out).
 */
export type ConnectionEvent =
  | { readonly state: 'open' }
  | { readonly state: 'reconnecting'; readonly code: number; readonly attempt: number }
  | { readonly state: 'closed'; readonly code: number; readonly reason: string };
type OpenParams = Omit<OpenMessage, 'type' | 'rid'>;
type Opened = Extract<ServerMessage, { type: 'opened' }>;

/** Reconnects tried after a resumable close (waiting 0.2 s, doubling, at most 5 s between). */
const RECONNECT_ATTEMPTS = 10;

const RESUMABLE = new Set<number>([CloseCode.GOING_AWAY, CloseCode.TOO_SLOW, CloseCode.ABNORMAL]);

/**
 * Typed client of protocol v1 (or v2, whose keyframe parts group entities by table; choose it with
 * `subprotocol`): controls as promises, a stream of server messages, and the
 * replayed world as a local map (`state`, keyed `table|id`) kept by applying keyframes and frames.
 * This core trusts what the server sends and carries no schema library (the browser's player is
 * built on it); `ReplayClient` in client.ts checks each message against its schema.
 */
export class ReplayClient {
  /** Entity states by entityKey(table, id), `table|id`. */
  readonly state = new Map<string, Record<string, unknown>>();
  epoch = 0;
  /** Replay time of the state in `state` (ms). */
  t = 0;
  keyframeComplete = false;
  session: string | undefined;
  playing = false;
  achievedSpeed = 0;

  private socket!: WebSocketLike;
  private nextRid = 1;
  private readonly pending = new Map<
    number,
    { resolve: (m: AnyServerMessage) => void; reject: (e: Error) => void }
  >();
  private readonly listeners = new Set<Listener>();
  private readonly connectionListeners = new Set<(event: ConnectionEvent) => void>();
  private closedByUser = false;
  private reconnecting = false;

  // Public for subclasses and `connect`; use `connect`, which also dials.
  constructor(
    private readonly url: string,
    protected readonly options: ReplayClientOptions,
  ) {}

  static async connect<C extends ReplayClient>(
    this: new (url: string, options: ReplayClientOptions) => C,
    url: string,
    options: ReplayClientOptions = {},
  ): Promise<C> {
    const client = new this(url, options);
    await client.dial();
    return client;
  }

  /** The message a parsed value is, or undefined to drop it. */
  protected check(value: unknown): AnyServerMessage | undefined {
    return value as AnyServerMessage;
  }

  get subprotocol(): Subprotocol {
    return (this.socket.protocol || this.options.subprotocol || SUBPROTOCOL_JSON) as Subprotocol;
  }

  /** Every server message, as it arrives; returns an unsubscribe function. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The connection's state changes (lost, reconnecting, back, given up); returns an unsubscribe function. */
  onConnection(listener: (event: ConnectionEvent) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  private connection(event: ConnectionEvent): void {
    for (const listener of [...this.connectionListeners]) listener(event);
  }

  /** Resolves with the first message (arriving from now on) that matches. */
  waitFor<T extends AnyServerMessage>(
    predicate: (m: AnyServerMessage) => m is T,
    timeoutMs?: number,
  ): Promise<T>;
  waitFor(predicate: (m: AnyServerMessage) => boolean, timeoutMs?: number): Promise<AnyServerMessage>;
  waitFor(predicate: (m: AnyServerMessage) => boolean, timeoutMs = 10_000): Promise<AnyServerMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((m) => {
        if (!predicate(m)) return;
        clearTimeout(timer);
        off();
        resolve(m);
      });
    });
  }

  async open(params: OpenParams): Promise<Opened> {
    const opened = (await this.request({ type: 'open', ...params })) as Opened;
    this.session = opened.session;
    return opened;
  }

  /** Joins a session; `resume` is the token from a going-away close (see resumeToken). */
  async attach(session: string, resume?: string): Promise<Opened> {
    const opened = (await this.request(
      resume === undefined ? { type: 'attach', session } : { type: 'attach', session, resume },
    )) as Opened;
    this.session = opened.session;
    return opened;
  }

  /** Plays on; with `until` (epoch ms) the session pauses exactly there. */
  play = (until?: number) =>
    this.request(until === undefined ? { type: 'play' } : { type: 'play', until }).then(() => undefined);
  pause = () => this.request({ type: 'pause' }).then(() => undefined);
  seek = (t: number) => this.request({ type: 'seek', t }).then(() => undefined);
  speed = (speed: Speed) => this.request({ type: 'speed', speed }).then(() => undefined);

  async close(): Promise<void> {
    await this.request({ type: 'close' });
    this.session = undefined;
  }

  /** Closes the socket without closing the session (it can be attached again). */
  disconnect(): void {
    this.closedByUser = true;
    this.socket.close(CloseCode.NORMAL);
  }

  /** Sends raw data, for tests of the server's robustness. */
  sendRaw(data: string | Uint8Array): void {
    this.socket.send(data);
  }

  private request(message: ClientMessage): Promise<AnyServerMessage> {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new Error(`${message.type} got no answer`));
      }, this.options.requestTimeoutMs ?? 15_000);
      this.pending.set(rid, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.send(encode({ ...message, rid }, this.subprotocol));
    });
  }

  /** How the socket last closed; a refused token closes with 4001 and its code as the reason. */
  lastClose: { code: number; reason: string } | undefined;

  /** The resume token of the last going-away close (1001), which attach passes on when reconnecting. */
  get resumeToken(): string | undefined {
    const reason = this.lastClose?.code === CloseCode.GOING_AWAY ? this.lastClose.reason : '';
    return reason.startsWith(RESUME_PREFIX) ? reason.slice(RESUME_PREFIX.length) : undefined;
  }

  protected async dial(): Promise<void> {
    const token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    const url =
      token === undefined
        ? this.url
        : `${this.url}${this.url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`;
    const factory = this.options.webSocket ?? (await defaultWebSocket());
    const socket = factory(url, offered(this.options.subprotocol ?? SUBPROTOCOL_JSON));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    return new Promise((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (event) => reject(new Error(`could not connect to ${this.url}: ${String(event)}`));
      socket.onmessage = (event) => this.receive(event.data);
      socket.onclose = (event) => {
        this.lastClose = { code: event.code, reason: event.reason ?? '' };
        this.onClose(event.code);
      };
    });
  }

  private onClose(code: number): void {
    for (const { reject } of this.pending.values()) reject(new Error(`socket closed (${code})`));
    this.pending.clear();
    // An expired token is resumable when the client can ask for a fresh one.
    const renewable =
      code === CloseCode.UNAUTHORIZED &&
      this.lastClose?.reason === ErrorCode.TOKEN_EXPIRED &&
      typeof this.options.token === 'function';
    // A socket that failed while reconnecting: the loop below tries again.
    if (this.closedByUser || this.reconnecting) return;
    if (!this.options.reconnect || !this.session || !(RESUMABLE.has(code) || renewable)) {
      this.connection({ state: 'closed', code, reason: this.lastClose?.reason ?? '' });
      return;
    }
    const session = this.session;
    this.reconnecting = true;
    void (async () => {
      let last = '';
      for (let attempt = 0; attempt < RECONNECT_ATTEMPTS; attempt++) {
        this.connection({ state: 'reconnecting', code, attempt: attempt + 1 });
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
        try {
          await this.dial();
          await this.attach(session, this.resumeToken);
          this.reconnecting = false;
          this.connection({ state: 'open' });
          return;
        } catch (err) {
          last = (err as Error).message;
        }
      }
      this.reconnecting = false;
      // Said, not swallowed: the caller decides what the user sees.
      this.connection({
        state: 'closed',
        code,
        reason: `gave up after ${RECONNECT_ATTEMPTS} attempts: ${last}`,
      });
    })();
  }

  private receive(data: unknown): void {
    const raw = typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer);
    const parsed = parse(raw, this.subprotocol);
    if (!parsed.ok) return;
    const message = this.check(parsed.message);
    if (!message) {
      // A request whose answer does not fit the protocol fails now, saying so, not later as "no answer".
      const rid = (parsed.message as { rid?: unknown } | null)?.rid;
      const waiter = typeof rid === 'number' ? this.pending.get(rid) : undefined;
      if (waiter) {
        this.pending.delete(rid as number);
        waiter.reject(new Error(`the server answered with a message that does not fit ${this.subprotocol}`));
      }
      return;
    }
    this.apply(message);
    if (
      (message.type === 'ok' || message.type === 'opened' || message.type === 'error') &&
      typeof message.rid === 'number'
    ) {
      const waiter = this.pending.get(message.rid);
      if (waiter) {
        this.pending.delete(message.rid);
        if (message.type === 'error') waiter.reject(new ReplayRequestError(message.code, message.message));
        else waiter.resolve(message);
      }
    }
    for (const listener of [...this.listeners]) listener(message);
  }

  /** Keeps `state` equal to the server's replayed world. */
  private apply(message: AnyServerMessage): void {
    switch (message.type) {
      case 'opened':
        // Epochs count per session and server: after (re)attaching, any epoch is new.
        this.epoch = 0;
        break;
      case 'keyframe':
        if (message.epoch < this.epoch) return;
        if (message.epoch > this.epoch || message.part === 0) {
          this.epoch = message.epoch;
          this.state.clear();
          this.keyframeComplete = false;
        }
        if ('tables' in message) {
          for (const [table, states] of Object.entries(message.tables)) {
            for (const [id, state] of Object.entries(states)) this.state.set(entityKey(table, id), state);
          }
        } else {
          for (const e of message.entities) this.state.set(entityKey(e.table, e.id), e.state);
        }
        this.t = message.t;
        if (message.last) this.keyframeComplete = true;
        break;
      case 'frame':
        if (message.epoch !== this.epoch) return;
        for (const change of message.changes) applyChange(this.state, change);
        this.t = message.t;
        break;
      case 'clock':
        if (message.epoch !== this.epoch) return;
        this.t = message.t;
        this.playing = message.playing;
        this.achievedSpeed = message.achievedSpeed ?? 0;
        break;
      default:
        break;
    }
  }
}

/** One change applied to a state map: t clears its table, d removes, anything else sets. */
export function applyChange(state: Map<string, Record<string, unknown>>, change: Change): void {
  if (change.op === 't') {
    deleteTable(state, change.table);
  } else if (change.op === 'd') {
    state.delete(entityKey(change.table, change.id));
  } else {
    state.set(entityKey(change.table, change.id), change.state ?? {});
  }
}

/** The subprotocols to offer: the one chosen, then for v2 its v1 twin, which a server older than v2 speaks. */
function offered(subprotocol: Subprotocol): string[] {
  if (!groupsKeyframes(subprotocol)) return [subprotocol];
  return [subprotocol, isMsgpack(subprotocol) ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON];
}

/** The global WebSocket where there is one (browsers, Node 22+), else the `ws` package (Node 20). */
async function defaultWebSocket(): Promise<WebSocketFactory> {
  type Constructor = new (url: string, protocols: string[]) => WebSocketLike;
  const global = (globalThis as { WebSocket?: Constructor }).WebSocket;
  if (global) return (url, protocols) => new global(url, protocols);
  const { WebSocket } = await import('ws');
  return (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike;
}
