import type { Logger } from 'pino';
import { CloseCode, ErrorCode } from '@msr/protocol/codes';
import type { ClientMessage, ServerMessage } from '@msr/protocol/messages';
import { usToMs } from './micros.js';
import { ReplayError } from './errors.js';
import type { ReplaySession, SessionSink } from './session.js';
import { ANONYMOUS, type Principal } from '../principal.js';
import type { SessionManager } from './session-manager.js';

/**
 * One client socket's conversation: its messages are handled one at a time, in order, and every
 * message with a rid gets exactly one ok or error.
 */
export class ReplayConnection {
  private session: ReplaySession | undefined;
  private queue: Promise<void> = Promise.resolve();
  /** The socket has closed; a session opened for it after that must not outlive it. */
  private socketClosed = false;

  constructor(
    private readonly manager: SessionManager,
    private readonly sink: SessionSink,
    private readonly log: Logger,
    private readonly principal: Principal = ANONYMOUS,
    /** Unread bytes this socket may hold while it has no session (error replies) before it is closed. */
    private readonly unboundBufferBytes = Infinity,
  ) {}

  /** Queues a decoded message; the returned promise settles when it has been answered. */
  receive(message: ClientMessage): Promise<void> {
    this.queue = this.queue.then(() => this.handle(message));
    return this.queue;
  }

  /** Answers a message that could not be decoded. */
  reject(code: ErrorCode, message: string, rid?: string | number): void {
    // A client that sends bad messages and reads no replies must not grow the server's memory; with
    // a session, the session's own backpressure limits (coalescing, then 4008) apply.
    if (!this.session && this.sink.buffered() > this.unboundBufferBytes) {
      this.sink.close(CloseCode.TOO_SLOW, 'client too slow: replies not read');
      return;
    }
    this.sink.send(
      rid === undefined ? { type: 'error', code, message } : { type: 'error', rid, code, message },
    );
  }

  /** The socket closed: the session stays (for a while) so the client can attach again. */
  closed(): void {
    this.socketClosed = true;
    this.session?.detach(this.sink);
    this.session = undefined;
  }

  private async handle(message: ClientMessage): Promise<void> {
    try {
      await this.dispatch(message);
    } catch (err) {
      if (err instanceof ReplayError) {
        this.reject(err.code, err.message, message.rid);
      } else {
        this.log.error({ err, type: message.type }, 'replay request failed');
        this.reject(ErrorCode.INTERNAL, 'internal error', message.rid);
      }
    }
  }

  private ok(message: ClientMessage): void {
    if (message.rid !== undefined) this.sink.send({ type: 'ok', rid: message.rid });
  }

  /** `open` or `attach`: the socket joins a session, hears `opened`, then gets a keyframe at its position. */
  private async join(message: Extract<ClientMessage, { type: 'open' | 'attach' }>): Promise<void> {
    if (this.session)
      throw new ReplayError(ErrorCode.ALREADY_OPEN, `this socket already has session ${this.session.id}`);
    const session =
      message.type === 'open'
        ? await this.manager.open(message, this.principal.subject, this.principal.admin)
        : await this.manager.find(message.session, this.principal, message.resume);
    if (this.socketClosed) {
      // The socket went away while the session was being made: nobody else knows a session
      // opened for it, so it is closed now (its slot freed); an attached one stays as it was.
      if (message.type === 'open') await this.manager.close(session.id);
      return;
    }
    if (session.sinks.size >= this.manager.maxSocketsPerSession) {
      throw new ReplayError(
        ErrorCode.SOCKET_LIMIT,
        `session ${session.id} already has ${session.sinks.size} sockets, the most one session may have`,
      );
    }
    this.session = session;
    session.attach(this.sink);
    const window = await this.manager.window();
    const opened: ServerMessage = {
      type: 'opened',
      session: session.id,
      from: usToMs(session.spec.from),
      to: usToMs(session.spec.to),
      earliest: window.earliest ?? usToMs(session.spec.from),
      latest: window.latest ?? usToMs(session.spec.from),
    };
    this.sink.send(message.rid === undefined ? opened : { ...opened, rid: message.rid });
    // A fresh epoch at the session's position: the keyframe for this socket, then frames.
    session.restart();
    if (message.type === 'attach' && session.spec.playing && !session.state.playing) session.play();
  }

  private async dispatch(message: ClientMessage): Promise<void> {
    if (message.type === 'open' || message.type === 'attach') return this.join(message);
    const session = this.session;
    if (!session) throw new ReplayError(ErrorCode.NOT_OPEN, `${message.type} before open or attach`);
    switch (message.type) {
      case 'play':
        session.play(message.until);
        break;
      case 'pause':
        session.pause();
        break;
      case 'seek':
        await session.seek(message.t);
        break;
      case 'speed':
        session.setSpeed(message.speed);
        break;
      case 'close':
        // This socket stays open (it may open another session); its slot is free before the ok.
        session.detach(this.sink);
        this.session = undefined;
        await this.manager.close(session.id);
        break;
    }
    this.ok(message);
  }
}
