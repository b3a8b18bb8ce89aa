import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { refreshEntityLastStates } from '../db/settings.js';
import { DemoLiveGenerator } from './live.js';
import pg from 'pg';
import { captureSlotName, databaseName, type CaptureConfig, type CaptureTiming } from '../config.js';
import { DEMO_SOURCE_TABLES, demoEpoch, fillDemoSource, installDemo, seedDemoHistory } from './seed.js';

const PUBLICATION = 'msr_demo';

/** `connecting`: seeded, waiting for the built-in capture to stream the live demo. */
export type DemoState = 'seeding' | 'connecting' | 'live' | 'idle' | 'failed';

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
  private markSourceReady: (ready: boolean) => void = () => undefined;
  /** The live demo goes through the built-in capture (the database decodes WAL and we may replicate). */
  private captures = false;
  /**
   * Settles when the source tables hold the seeded state and their publication exists (true), or
   * when the demo will not go through the capture (false): the capture starts after it.
   */
  readonly sourceReady: Promise<boolean> = new Promise((resolve) => (this.markSourceReady = resolve));
  /**
   * Settles when seeding has ended (seeded, found already seeded, failed or stopped). Maintenance
   * waits for it: its bootstrap run would otherwise fight the seed for the event table's locks.
   */
  readonly seeded: Promise<void> = new Promise((resolve) => (this.markSeeded = resolve));

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    private readonly options: { historyMs?: number; mayCapture: boolean },
  ) {}

  /**
   * The capture of the demo's source tables, when the live demo goes through it: the database
   * itself is the source, under the source name the seeded history has.
   */
  captureConfig(databaseUrl: string, timing: CaptureTiming): CaptureConfig | undefined {
    if (!this.captures) return undefined;
    return {
      sourceUrl: databaseUrl,
      sourceName: 'demo',
      publication: PUBLICATION,
      // Slots are per server, and several databases of one server may run the demo.
      slot: captureSlotName(`demo_${databaseName(databaseUrl)}`),
      tables: [...DEMO_SOURCE_TABLES],
      to: 'database',
      ...timing,
    };
  }

  private capture: { readonly status: { readonly state: string } } | undefined;

  get status(): { state: DemoState; error?: string } {
    if (this.error) return { state: this.state, error: this.error };
    // Live means moving on screen: through the capture, once it streams.
    if (this.state === 'live' && this.capture && this.capture.status.state !== 'streaming') {
      return { state: 'connecting' };
    }
    return { state: this.state };
  }

  /** The capture that streams the live demo (captureConfig's): the demo is live once it streams. */
  watch(capture: { readonly status: { readonly state: string } }): void {
    this.capture = capture;
  }

  /** Installs the demo models (awaited, so a broken database fails the start) and starts seeding. */
  async start(): Promise<void> {
    await installDemo(this.pool);
    this.captures = this.options.mayCapture && (await databaseCaptures(this.pool));
    if (!this.captures) this.markSourceReady(false);
    this.work = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.work;
    await this.generator?.stop();
  }

  private async run(): Promise<void> {
    try {
      const seeded = await seedDemoHistory(this.pool, this.log, { historyMs: this.options.historyMs });
      if (seeded && !this.stopped) await refreshEntityLastStates(this.pool, this.log);
      this.markSeeded();
      const epoch = await demoEpoch(this.pool);
      if (!epoch) {
        this.log.warn('DEMO is on but this database was not seeded by the demo; no live demo events');
        this.state = 'idle';
        return;
      }
      if (this.stopped) return;
      if (this.captures) await this.prepareSource();
      this.generator = new DemoLiveGenerator(this.pool, epoch, this.log, this.captures);
      await this.generator.start();
      this.state = 'live';
    } catch (err) {
      this.state = 'failed';
      this.error = (err as Error).message;
      this.log.error({ err }, 'demo history could not be seeded');
    } finally {
      this.markSeeded();
      this.markSourceReady(false);
    }
  }

  /** The source tables hold the seeded state, and the capture's publication exists. */
  private async prepareSource(): Promise<void> {
    const rows = await fillDemoSource(this.pool, new Date());
    if (rows > 0) this.log.info({ rows }, 'demo source tables filled from the seeded history');
    const { rowCount } = await this.pool.query('select 1 from pg_publication where pubname = $1', [
      PUBLICATION,
    ]);
    if (!rowCount) {
      await this.pool.query(
        `create publication ${pg.escapeIdentifier(PUBLICATION)} for table ${DEMO_SOURCE_TABLES.join(', ')}`,
      );
    }
    this.markSourceReady(true);
  }
}

/** Whether this database can be a capture source: it decodes WAL, and we may replicate. */
async function databaseCaptures(pool: Pool): Promise<boolean> {
  const { rows } = await pool.query<{ ok: boolean }>(
    `select current_setting('wal_level') = 'logical'
            and (select rolreplication or rolsuper from pg_roles where rolname = current_user) as ok`,
  );
  return rows[0]?.ok ?? false;
}
