import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { refreshEntityLastStates } from '../db/settings.js';
import { DemoLiveGenerator } from './live.js';
import { demoEpoch, installDemo, seedDemoHistory } from './seed.js';

export type DemoState = 'seeding' | 'live' | 'idle' | 'failed';

/**
 * The demo city: seeds history into an empty database in the background (the server already
 * answers /healthz meanwhile, and /readyz says "seeding"), then keeps it moving.
 */
export class DemoWorld {
  private state: DemoState = 'seeding';
  private error: string | undefined;
  private generator: DemoLiveGenerator | undefined;
  private work: Promise<void> = Promise.resolve();
  private stopped = false;
  private markSeeded: () => void = () => undefined;
  /**
   * Settles when seeding has ended (seeded, found already seeded, failed or stopped). Maintenance
   * waits for it: its bootstrap run would otherwise fight the seed for the event table's locks.
   */
  readonly seeded: Promise<void> = new Promise((resolve) => (this.markSeeded = resolve));

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    private readonly historyMs?: number,
  ) {}

  get status(): { state: DemoState; error?: string } {
    return this.error ? { state: this.state, error: this.error } : { state: this.state };
  }

  /** Installs the demo models (awaited, so a broken database fails the start) and starts seeding. */
  async start(): Promise<void> {
    await installDemo(this.pool);
    this.work = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.work;
    await this.generator?.stop();
  }

  private async run(): Promise<void> {
    try {
      const seeded = await seedDemoHistory(this.pool, this.log, { historyMs: this.historyMs });
      if (seeded && !this.stopped) await refreshEntityLastStates(this.pool, this.log);
      this.markSeeded();
      const epoch = await demoEpoch(this.pool);
      if (!epoch) {
        this.log.warn('DEMO is on but this database was not seeded by the demo; no live demo events');
        this.state = 'idle';
        return;
      }
      if (this.stopped) return;
      this.generator = new DemoLiveGenerator(this.pool, epoch, this.log);
      await this.generator.start();
      this.state = 'live';
    } catch (err) {
      this.state = 'failed';
      this.error = (err as Error).message;
      this.log.error({ err }, 'demo history could not be seeded');
    } finally {
      this.markSeeded();
    }
  }
}
