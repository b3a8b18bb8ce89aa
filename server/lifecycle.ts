import type { Logger } from 'pino';

/**
 * Remembers how to stop each part in the order they started, and stops them in reverse, so a
 * part never outlives what it depends on. A failed stop is logged and the rest still stop.
 */
export class Lifecycle {
  private readonly parts: { name: string; stop: () => Promise<void> | void }[] = [];

  constructor(private readonly log: Logger) {}

  started(name: string, stop: () => Promise<void> | void): void {
    this.parts.push({ name, stop });
  }

  async stopAll(): Promise<void> {
    while (this.parts.length > 0) {
      const part = this.parts.pop()!;
      try {
        await part.stop();
        this.log.debug({ part: part.name }, 'stopped');
      } catch (err) {
        this.log.error({ err, part: part.name }, 'failed to stop cleanly');
      }
    }
  }
}
