import { ErrorCode } from '@msr/protocol/codes';
import { json, type HttpResponse } from './route.js';

/**
 * At most `max` requests of one kind at once per server: each reads the database on the pool the
 * replay sockets share, so beyond a few at once callers wait their turn with 429 BUSY rather than
 * starve the sockets of connections.
 */
export class RequestLimit {
  private running = 0;

  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {}

  /** A release function, or the 429 answer when `max` are running. */
  enter(): { release: () => void } | { error: HttpResponse } {
    if (this.running >= this.max) {
      return {
        error: json(429, {
          code: ErrorCode.BUSY,
          message: `${this.running} ${this.what} requests are running, the most this server serves at once; retry shortly`,
        }),
      };
    }
    this.running++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.running--;
      },
    };
  }
}
