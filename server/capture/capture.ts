import pg from 'pg';
import type { Logger } from 'pino';
import type { CaptureConfig } from '../config.js';
import { connectionProblem, describeConnectionFailure } from '../connection-failure.js';
import { storeBatch } from '../ingest/store.js';
import { inTransaction } from '../db/transaction.js';
import { Refusals } from '../ingest/refusals.js';
import { writeChanges } from '../ingest/writer.js';
import type { Metrics } from '../metrics.js';
import { SourceCatalog, type SourceTable } from './catalog.js';
import { lsnValue } from './lsn.js';
import { CaptureProblem } from './problem.js';
import { publishedTables, snapshotAgain } from './resnapshot.js';
import { readSnapshot } from './snapshot.js';
import {
  CAPTURE_APPLICATION,
  checkSource,
  dropSlot,
  ensurePublication,
  slotInfo,
  sourceClientConfig,
  tableWarnings,
  type SlotInfo,
} from './source.js';
import { SlotStream } from './stream.js';
import type { KafkaSink } from './kafka-sink.js';
import type { CapturedChange } from './changes.js';
import { AdvisoryLock } from '../db/locks.js';

/** How long a stop waits for a batch being sent to Kafka before it gives the send up. */
const STOP_GRACE_MS = 2_000;
/** A send to Kafka waiting longer than this makes the capture unready (KAFKA_UNAVAILABLE). */
const KAFKA_STALL_MS = 10_000;

/** `off`: there is nothing to capture (the demo writes its events itself). */
export type CaptureState =
  'starting' | 'snapshotting' | 'streaming' | 'standby' | 'retrying' | 'off' | 'stopped';

export interface CaptureStatus {
  readonly state: CaptureState;
  /** Why it is not capturing, with the fix (a CaptureProblem's message). */
  readonly error?: string;
  readonly code?: string;
  /** Tables that cannot be replayed fully, and the like: the server still captures. */
  readonly warnings: readonly string[];
  readonly slot?: Pick<SlotInfo, 'retainedBytes' | 'lagBytes' | 'holder'>;
}

export interface CaptureOptions {
  /** Pause before starting over after a failure (default 5 s). */
  readonly retryMs?: number;
  /** Changes held before the stream waits for them to be stored (default 2,000). */
  readonly batchRows?: number;
  /** The capture starts once this settles true (the demo's source tables are ready), never if false. */
  readonly after?: Promise<boolean>;
  /** Runs after a batch is committed and before its position is confirmed (tests fail here). */
  readonly afterStore?: () => Promise<void> | void;
  /** CAPTURE_TO=kafka: changes go to Kafka in Debezium's format instead of into msr.cdc_event. */
  readonly kafka?: KafkaSink;
  /** A send to Kafka waiting this long is reported in `status` (default 10 s). */
  readonly kafkaStallMs?: number;
  /**
   * Into the database: after each committed batch, every change of the source committed up to
   * this commit time (epoch µs) is stored (the slot sends transactions in commit order).
   */
  readonly storedThrough?: (commitUs: number) => void;
}

/**
 * The built-in capture: streams a source PostgreSQL's changes (logical replication, pgoutput)
 * into msr.cdc_event, with the initial snapshot the slot exports as it is created. One process per
 * slot streams (advisory lock in MSR's database); others stand by and take over when it is gone.
 * Problems on the source (wal_level, role, publication, slot) are reported in `status` with their
 * fix, and retried; nothing here throws out of start().
 */
export class Capture {
  private readonly source: pg.Pool;
  private readonly catalog: SourceCatalog;
  private stream: SlotStream | undefined;
  private lockClient: pg.PoolClient | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private tables = new Set<string>();
  private current: CaptureStatus = { state: 'starting', warnings: [] };
  private readonly refusals: Refusals;
  private resnapshotting: Promise<void> | undefined;

  constructor(
    private readonly config: CaptureConfig,
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: CaptureOptions = {},
  ) {
    this.source = new pg.Pool({ ...sourceClientConfig(config), max: 2 });
    this.source.on('error', () => undefined);
    this.catalog = new SourceCatalog(this.source);
    this.refusals = new Refusals(log, metrics);
  }

  get status(): CaptureStatus {
    const refused = this.refusals.recent();
    const status =
      refused.length > 0
        ? { ...this.current, warnings: [...this.current.warnings, ...refused] }
        : this.current;
    return this.kafkaStall(status) ?? status;
  }

  /**
   * While streaming into Kafka, a send that has waited too long: the slot's position cannot move
   * and nothing new reaches the ingest, though the stream itself is fine.
   */
  private kafkaStall(status: CaptureStatus): CaptureStatus | undefined {
    const waiting = this.options.kafka?.waiting();
    if (status.state !== 'streaming' || status.error || !waiting) return undefined;
    if (waiting.ms < (this.options.kafkaStallMs ?? KAFKA_STALL_MS)) return undefined;
    const seconds = Math.round(waiting.ms / 1000);
    return {
      ...status,
      code: 'KAFKA_UNAVAILABLE',
      error:
        `captured changes have waited ${seconds} s for Kafka to acknowledge them; check KAFKA_BROKERS and the brokers` +
        (waiting.failure ? ` (last failure: ${waiting.failure})` : ''),
    };
  }

  start(): void {
    this.loop = this.run();
    this.watchTimer = setInterval(() => void this.watch(), this.config.heartbeatMs);
    this.watchTimer.unref();
  }

  /** The source name this capture stores its events under. */
  get sourceName(): string {
    return this.config.sourceName;
  }

  /**
   * Snapshots chosen tables of the publication again while the stream goes on (readTablesNow),
   * in the background; resolves once the request is checked. Unknown tables are refused.
   */
  async resnapshot(collections: readonly string[]): Promise<{ accepted: true } | { refused: string }> {
    if (this.resnapshotting) return { refused: 'a snapshot of this source is already running' };
    const chosen = await publishedTables(this.catalog, this.config.publication, collections);
    if ('refused' in chosen) return chosen;
    this.resnapshotting = this.snapshotTables(chosen.tables).finally(() => (this.resnapshotting = undefined));
    return { accepted: true };
  }

  private async snapshotTables(tables: SourceTable[]): Promise<void> {
    try {
      const rows = await snapshotAgain(this.config, tables, this.options.kafka ?? this.pool);
      this.metrics.captureEvents.inc(rows);
      this.log.info({ tables: tables.map((t) => `${t.schema}.${t.name}`), rows }, 'tables snapshotted again');
    } catch (err) {
      this.log.warn({ err }, 'the snapshot of tables failed; nothing of it was stored');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A batch on its way to a healthy broker is acknowledged in milliseconds; one stuck on a
    // broker that is gone is given up (not confirmed, so sent again on the next start).
    const giveUp = setTimeout(() => this.options.kafka?.giveUp(), STOP_GRACE_MS);
    await this.resnapshotting;
    clearInterval(this.watchTimer);
    this.wake?.();
    await this.stream?.stop();
    await this.loop;
    clearTimeout(giveUp);
    await this.options.kafka?.stop();
    await this.source.end().catch(() => undefined);
    this.set({ state: 'stopped' });
  }

  private set(status: Partial<CaptureStatus> & { state: CaptureState }): void {
    this.current = { warnings: this.current.warnings, slot: this.current.slot, ...status };
    this.metrics.captureStreaming.set(status.state === 'streaming' ? 1 : 0);
  }

  private async run(): Promise<void> {
    if (this.options.after) {
      const stopping = new Promise<false>((resolve) => (this.wake = () => resolve(false)));
      if (!(await Promise.race([this.options.after, stopping]))) {
        this.set({ state: 'off' });
        return;
      }
    }
    while (!this.stopped) {
      try {
        await this.session();
      } catch (err) {
        if (this.stopped) break;
        const problem = describe(err);
        if (problem.code === 'SLOT_IN_USE' && /active for PID/.test(problem.message)) {
          // Another server started streaming between our look at the slot and our start.
          this.set({ state: 'standby' });
        } else {
          this.set({ state: 'retrying', error: problem.message, code: problem.code });
          this.log.warn({ code: problem.code, err: problem }, 'capture cannot run; retrying');
        }
      } finally {
        this.releaseLock();
      }
      if (this.stopped) break;
      const standby = this.current.state === 'standby';
      await this.sleep(standby ? Math.max(500, this.config.takeoverMs / 4) : (this.options.retryMs ?? 5_000));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** One run: checks, the slot (and its snapshot) if needed, then the stream until it ends. */
  private async session(): Promise<void> {
    await checkSource(this.source);
    await ensurePublication(this.source, this.config);
    const tables = await this.readPublication();
    if (!(await this.takeLock())) {
      const slot = await slotInfo(this.source, this.config.slot);
      this.set({ state: 'standby', slot: slot && pick(slot) });
      return;
    }
    const slot = await this.ownSlot();
    if (slot === 'standby') return;
    await this.streamSlot((await this.startingSlot(slot, tables)).confirmedLsn ?? 0n);
  }

  /** The publication's tables, with a warning logged once for each new problem among them. */
  private async readPublication(): Promise<SourceTable[]> {
    const tables = await this.catalog.publicationTables(this.config.publication);
    this.tables = new Set(tables.map((t) => `${t.schema}.${t.name}`));
    const known = new Set(this.current.warnings);
    this.current = { ...this.current, warnings: tableWarnings(tables) };
    for (const warning of this.current.warnings) {
      if (!known.has(warning)) this.log.warn({ slot: this.config.slot }, warning);
    }
    return tables;
  }

  /**
   * The slot as this process may stream it (undefined: none yet), or 'standby' when another MSR
   * process still streams it; a slot of another tool, or held by one, is a CaptureProblem.
   */
  private async ownSlot(): Promise<SlotInfo | undefined | 'standby'> {
    const slot = await slotInfo(this.source, this.config.slot);
    if (slot && slot.plugin !== 'pgoutput') {
      throw new CaptureProblem(
        'SLOT_IN_USE',
        `slot ${this.config.slot} on the source decodes with ${slot.plugin}, so another tool made it: set CAPTURE_SLOT to another name`,
      );
    }
    if (slot?.active && slot.holder === CAPTURE_APPLICATION) {
      // Another MSR process (or one that just died, whose walsender is on its way out).
      this.set({ state: 'standby', slot: pick(slot) });
      return 'standby';
    }
    if (slot?.active) {
      throw new CaptureProblem(
        'SLOT_IN_USE',
        `slot ${this.config.slot} is streamed by ${slot.holder || 'another client'} (pid ${slot.holderPid}): stop it or set CAPTURE_SLOT to another name`,
      );
    }
    return slot;
  }

  /** The slot to stream from: made with its initial snapshot when there is none (or only a half-done one). */
  private async startingSlot(found: SlotInfo | undefined, tables: SourceTable[]): Promise<SlotInfo> {
    let slot = found;
    const state = await this.savedState();
    if (slot && state && state.done === false) {
      // A snapshot was under way when the process stopped: its rows were rolled back; start over.
      this.log.warn(
        { slot: this.config.slot },
        'an unfinished initial snapshot: dropping the slot to take it again',
      );
      await dropSlot(this.source, this.config.slot);
      slot = undefined;
    }
    if (!slot && state?.done) {
      throw new CaptureProblem(
        'SLOT_LOST',
        `slot ${this.config.slot} vanished from the source after capture had started: changes made since it went are not in MSR. ` +
          `To capture again from a new snapshot: DELETE FROM msr.capture_state WHERE slot_name = '${this.config.slot}'`,
      );
    }
    if (!slot) {
      await this.snapshot(tables);
      slot = await slotInfo(this.source, this.config.slot);
      if (!slot)
        throw new CaptureProblem('SLOT_LOST', `slot ${this.config.slot} vanished right after it was made`);
    } else if (!state) {
      // A slot made by the operator (as with pre-created slots elsewhere): stream it as it is.
      this.log.warn(
        { slot: this.config.slot },
        'the slot existed before MSR: streaming it without an initial snapshot (POST /api/v1/snapshots takes one)',
      );
      await this.pool.query(
        `insert into msr.capture_state (slot_name, source, snapshot_done_at, snapshot_rows) values ($1, $2, now(), 0)`,
        [this.config.slot, this.config.sourceName],
      );
    }
    return slot;
  }

  private async takeLock(): Promise<boolean> {
    this.lockClient = await this.pool.connect();
    const { rows } = await this.lockClient.query<{ ok: boolean }>(
      'select pg_try_advisory_lock($1, hashtext($2)) as ok',
      [AdvisoryLock.CAPTURE, this.config.slot],
    );
    if (!rows[0]!.ok) this.releaseLock();
    return rows[0]!.ok;
  }

  private releaseLock(): void {
    // Ending the connection releases the lock, whatever state the session left it in.
    this.lockClient?.release(true);
    this.lockClient = undefined;
  }

  private async savedState(): Promise<{ done: boolean } | undefined> {
    const { rows } = await this.pool.query<{ done: boolean }>(
      'select snapshot_done_at is not null as done from msr.capture_state where slot_name = $1',
      [this.config.slot],
    );
    return rows[0];
  }

  /**
   * Creates the slot with an exported snapshot and stores every captured row as of that snapshot
   * in one transaction, together with the note that it is done: a crash leaves nothing half-stored.
   */
  private async snapshot(tables: readonly SourceTable[]): Promise<void> {
    this.set({ state: 'snapshotting' });
    await this.pool.query(
      `insert into msr.capture_state (slot_name, source) values ($1, $2)
       on conflict (slot_name) do update
         set source = excluded.source, snapshot_started_at = now(), snapshot_done_at = null,
             consistent_lsn = null, snapshot_rows = null`,
      [this.config.slot, this.config.sourceName],
    );
    const replication = new pg.Client(sourceClientConfig(this.config, true));
    await replication.connect();
    try {
      const clock = await replication.query<{ us: string }>(
        `select (extract(epoch from clock_timestamp()) * 1000000)::bigint::text as us`,
      );
      const created = await replication.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT ${pg.escapeIdentifier(this.config.slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
      const point = {
        snapshotName: created.rows[0]!.snapshot_name,
        consistentLsn: lsnValue(created.rows[0]!.consistent_point),
        timeUs: BigInt(clock.rows[0]!.us),
      };
      const read = (write: (changes: CapturedChange[]) => Promise<void>) =>
        readSnapshot(
          sourceClientConfig(this.config),
          point,
          tables,
          this.config.sourceName,
          async (changes) => {
            await write(changes);
            this.metrics.captureEvents.inc(changes.length);
          },
        );
      const done = (db: pg.Pool | pg.PoolClient, count: number) =>
        db.query(
          `update msr.capture_state set snapshot_done_at = now(), consistent_lsn = $2, snapshot_rows = $3
            where slot_name = $1`,
          [this.config.slot, point.consistentLsn.toString(), count],
        );
      const sink = this.options.kafka;
      // Into Kafka the snapshot cannot be one transaction with its note: a crash before the note
      // takes it again from a new slot, and its rows are sent again at that later moment.
      let rows: number;
      if (sink) {
        rows = await read(async (changes) => void (await sink.send(changes)));
        await done(this.pool, rows);
      } else {
        rows = await inTransaction(this.pool, async (client) => {
          const count = await read((changes) => writeChanges(client, changes));
          await done(client, count);
          return count;
        });
      }
      this.log.info({ slot: this.config.slot, rows, tables: tables.length }, 'initial snapshot stored');
    } finally {
      await replication.end().catch(() => undefined);
    }
  }

  private async streamSlot(startLsn: bigint): Promise<void> {
    const stream = new SlotStream({
      clientConfig: sourceClientConfig(this.config),
      slot: this.config.slot,
      publication: this.config.publication,
      source: this.config.sourceName,
      catalog: this.catalog,
      startLsn,
      batchRows: this.options.batchRows ?? 2_000,
      log: this.log,
      store: async (changes, refused) => {
        const sink = this.options.kafka;
        const tooLarge = sink ? await sink.send(changes) : [];
        const { failures } = await storeBatch(this.pool, sink ? [] : changes, refused);
        this.refusals.note([...failures, ...tooLarge]);
        await this.options.afterStore?.();
      },
      onStored: (changes, commitUs) => {
        this.metrics.captureEvents.inc(changes);
        if (commitUs === undefined) return;
        this.metrics.captureCommitLag.set(Date.now() / 1000 - Number(commitUs) / 1e6);
        if (!this.options.kafka) this.options.storedThrough?.(Number(commitUs));
      },
    });
    this.stream = stream;
    this.set({ state: 'streaming', error: undefined, code: undefined });
    this.log.info({ slot: this.config.slot, publication: this.config.publication }, 'capture streaming');
    try {
      await stream.run();
    } finally {
      this.stream = undefined;
    }
  }

  /**
   * Every heartbeat interval: a logical message on the source (so the slot moves on while the
   * captured tables are idle and other databases write), the slot's figures, and the publication's
   * tables (one that left it is a readiness error, not a silent stop).
   */
  private async watch(): Promise<void> {
    if (this.stopped || this.current.state !== 'streaming') return;
    try {
      await this.source
        .query(`select pg_logical_emit_message(false, 'msr.heartbeat', '')`)
        .catch((err: unknown) => this.log.debug({ err }, 'no heartbeat message on the source'));
      const slot = await slotInfo(this.source, this.config.slot);
      if (!slot) {
        this.set({
          state: 'retrying',
          code: 'SLOT_LOST',
          error: `slot ${this.config.slot} vanished from the source`,
        });
        await this.stream?.stop();
        return;
      }
      this.metrics.captureSlotRetainedBytes.set(slot.retainedBytes);
      this.metrics.captureSlotLagBytes.set(slot.lagBytes);
      const { rows } = await this.source.query<{ name: string }>(
        `select schemaname || '.' || tablename as name from pg_publication_tables where pubname = $1`,
        [this.config.publication],
      );
      const now = new Set(rows.map((r) => r.name));
      const lost = [...this.tables].filter((t) => !now.has(t));
      this.current = {
        ...this.current,
        slot: pick(slot),
        ...(lost.length > 0
          ? {
              code: 'PUBLICATION_CHANGED',
              error: `publication ${this.config.publication} no longer has ${lost.join(', ')}: their changes are not captured`,
            }
          : { code: undefined, error: undefined }),
      };
    } catch (err) {
      this.log.debug({ err }, 'could not read the capture slot figures');
    }
  }
}

function pick(slot: SlotInfo): CaptureStatus['slot'] {
  return { retainedBytes: slot.retainedBytes, lagBytes: slot.lagBytes, holder: slot.holder };
}

/** Any failure as a problem with a code; a connection failure is the source being unreachable. */
function describe(err: unknown): CaptureProblem {
  if (err instanceof CaptureProblem) return err;
  const e = err as { code?: string; message?: string };
  if (e.code === '55006') return new CaptureProblem('SLOT_IN_USE', `slot is in use: ${e.message}`);
  if (
    e.code === 'ECONNREFUSED' ||
    e.code === 'ENOTFOUND' ||
    e.code === '3D000' ||
    connectionProblem(err) !== undefined
  ) {
    // TLS and authentication failures in words (certificate not trusted, another host name, ...).
    return new CaptureProblem(
      'SOURCE_UNREACHABLE',
      `cannot reach the source database: ${describeConnectionFailure(err)}`,
    );
  }
  return new CaptureProblem('CAPTURE_FAILED', e.message ?? String(err));
}
