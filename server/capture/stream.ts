import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Logger } from 'pino';
import type { FailedRecord } from '../ingest/change.js';
import type { SourceCatalog, SourceTable } from './catalog.js';
import {
  KeylessWithoutImage,
  rowChange,
  truncateChange,
  type CapturedChange,
  type CommitInfo,
  type Tuple,
} from './changes.js';
import { lsnText, lsnValue } from './lsn.js';

/** pgoutput with every column value left as PostgreSQL's text output (values.ts converts it). */
class TextPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const message = super.parse(buffer);
    // The parser caches this relation and reads later tuples with its columns' parsers.
    if (message.tag === 'relation')
      for (const column of message.columns) column.parser = (raw: unknown) => raw;
    return message;
  }
}

export interface StreamOptions {
  readonly clientConfig: pg.ClientConfig;
  readonly slot: string;
  readonly publication: string;
  readonly source: string;
  readonly catalog: SourceCatalog;
  /** The slot's confirmed position as the stream starts. */
  readonly startLsn: bigint;
  /** Stores changes, and changes that cannot be replayed, durably (the same again is a no-op). */
  readonly store: (changes: CapturedChange[], refused: FailedRecord[]) => Promise<void>;
  /** Changes held before the stream waits for them to be stored. */
  readonly batchRows: number;
  readonly log: Logger;
  readonly onStored?: (changes: number, lastCommitUs: bigint | undefined) => void;
}

interface OpenTransaction {
  readonly commit: CommitInfo;
  seq: number;
}

/**
 * Streams the slot and stores each transaction's changes, confirming a commit's position to the
 * source only once everything up to it is committed in MSR's database: after a crash the source
 * sends those changes again, and storing them again changes nothing. Resolves when stopped,
 * rejects when the stream or the store fails (the caller starts over from the slot's position).
 */
export class SlotStream {
  private readonly service: LogicalReplicationService;
  private open: OpenTransaction | undefined;
  private pending: CapturedChange[] = [];
  private refused: FailedRecord[] = [];
  /** End LSN of the last commit whose changes are all in `pending` or stored. */
  private pendingEnd: bigint | undefined;
  private pendingCommitUs: bigint | undefined;
  private confirmed: bigint;
  private flushing: Promise<void> | undefined;
  /** The stream's reads waiting for the next batch to be taken by flush. */
  private waiting: (() => void)[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private failure: ((err: Error) => void) | undefined;
  private stopped = false;

  constructor(private readonly options: StreamOptions) {
    this.confirmed = options.startLsn;
    // Positions are confirmed by this class alone (the library's timer would confirm what it
    // received, stored or not).
    this.service = new LogicalReplicationService(options.clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
  }

  /** The last position confirmed to the source. */
  get confirmedLsn(): bigint {
    return this.confirmed;
  }

  async run(): Promise<void> {
    const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.publication] });
    const failed = new Promise<never>((_, reject) => (this.failure = reject));
    this.service.on('data', (lsn: string, message: Pgoutput.Message) =>
      this.onMessage(lsnValue(lsn), message).catch((err: unknown) => this.fail(err as Error)),
    );
    this.service.on('heartbeat', (lsn: string, _ts: number, reply: boolean) =>
      this.onKeepalive(lsnValue(lsn), reply),
    );
    this.service.on('error', (err: Error) => this.fail(err));
    this.statusTimer = setInterval(() => void this.service.acknowledge(lsnText(this.confirmed)), 10_000);
    this.statusTimer.unref();
    try {
      await Promise.race([this.service.subscribe(plugin, this.options.slot), failed]);
      if (!this.stopped) throw new Error('the source ended the replication stream');
    } finally {
      clearInterval(this.statusTimer);
      clearTimeout(this.flushTimer);
      await this.service.destroy().catch(() => undefined);
    }
  }

  /** Stops streaming after storing what was received (its position confirmed on the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.flush().catch(() => undefined);
    await this.service.stop().catch(() => undefined);
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.failure?.(err);
  }

  private async onMessage(lsn: bigint, message: Pgoutput.Message): Promise<void> {
    if (this.stopped) return;
    switch (message.tag) {
      case 'begin':
        this.open = {
          commit: {
            source: this.options.source,
            timeUs: message.commitTime as bigint,
            commitLsn: lsnValue(message.commitLsn!),
            xid: String(message.xid),
          },
          seq: 0,
        };
        return;
      case 'relation':
        // A new table, or one whose columns changed: read its types and key again.
        await this.options.catalog.load(message.relationOid);
        return;
      case 'insert':
        return this.add(
          rowChange(
            await this.table(message.relation),
            'c',
            { old: null, new: message.new as Tuple },
            lsn,
            this.seq(),
            this.commit(),
          ),
        );
      case 'update':
        return this.addRow(
          await this.table(message.relation),
          'u',
          { old: message.old as Tuple | null, new: message.new as Tuple, key: message.key as Tuple | null },
          lsn,
        );
      case 'delete':
        return this.addRow(
          await this.table(message.relation),
          'd',
          { old: message.old as Tuple | null, new: null, key: message.key as Tuple | null },
          lsn,
        );
      case 'truncate':
        for (const relation of message.relations) {
          await this.add(truncateChange(await this.table(relation), lsn, this.seq(), this.commit()));
        }
        return;
      case 'commit': {
        this.pendingEnd = lsnValue(message.commitEndLsn!);
        this.pendingCommitUs = this.open?.commit.timeUs;
        this.open = undefined;
        this.scheduleFlush();
        return;
      }
      default:
        return;
    }
  }

  private commit(): CommitInfo {
    if (!this.open) throw new Error('a change arrived outside a transaction');
    return this.open.commit;
  }

  private seq(): number {
    if (!this.open) throw new Error('a change arrived outside a transaction');
    return this.open.seq++;
  }

  private async table(relation: Pgoutput.MessageRelation): Promise<SourceTable> {
    return (
      this.options.catalog.cached(relation.relationOid) ?? this.options.catalog.load(relation.relationOid)
    );
  }

  /** An update or delete; one that cannot be replayed is kept in msr.ingest_error instead. */
  private async addRow(
    table: SourceTable,
    op: 'u' | 'd',
    tuples: Parameters<typeof rowChange>[2],
    lsn: bigint,
  ) {
    const seq = this.seq();
    const commit = this.commit();
    try {
      return await this.add(rowChange(table, op, tuples, lsn, seq, commit));
    } catch (err) {
      if (!(err instanceof KeylessWithoutImage)) throw err;
      this.refused.push({
        topic: `${commit.source}.${table.schema}.${table.name}`,
        partition: seq,
        offset: commit.commitLsn.toString(),
        key: null,
        value: Buffer.from(
          JSON.stringify({ op, lsn: lsn.toString(), old: tuples.old, new: tuples.new, key: tuples.key }),
        ),
        reason: 'MISSING_KEY',
        detail: err.message,
      });
    }
  }

  /**
   * Holds a change. A full batch starts its store and the stream reads on into the next one, so
   * the source decodes while MSR's database writes; once the next batch is full too, the stream
   * waits for the store under way. At most two batches are held.
   */
  private async add(change: CapturedChange): Promise<void> {
    this.pending.push(change);
    if (this.pending.length < this.options.batchRows) return;
    if (!this.flushing) {
      this.flush().catch((err: unknown) => this.fail(err as Error));
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Stores soon, so that a lone transaction is visible within milliseconds. */
  private scheduleFlush(): void {
    if (this.flushTimer || this.flushing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush().catch((err: unknown) => this.fail(err as Error));
    }, 5);
  }

  /** Stores everything held, then confirms the last commit among it. */
  private flush(): Promise<void> {
    this.flushing ??= (async () => {
      try {
        while (
          this.pending.length > 0 ||
          this.refused.length > 0 ||
          (this.pendingEnd ?? 0n) > this.confirmed
        ) {
          const batch = this.pending;
          const refused = this.refused;
          const end = this.pendingEnd;
          const commitUs = this.pendingCommitUs;
          this.pending = [];
          this.refused = [];
          this.resumeReading();
          if (batch.length > 0 || refused.length > 0) await this.options.store(batch, refused);
          this.options.onStored?.(batch.length, commitUs);
          if (end !== undefined && end > this.confirmed) {
            this.confirmed = end;
            await this.service.acknowledge(lsnText(end));
          }
        }
      } finally {
        this.flushing = undefined;
        this.resumeReading();
      }
    })();
    return this.flushing;
  }

  private resumeReading(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resume of waiting) resume();
  }

  /**
   * The source's keepalive carries how far it has read. With nothing received and not yet stored,
   * everything up to there is done: confirming it lets the slot free WAL while captured tables
   * are idle.
   */
  private onKeepalive(lsn: bigint, reply: boolean): void {
    if (
      !this.open &&
      this.pending.length === 0 &&
      this.refused.length === 0 &&
      !this.flushing &&
      lsn > this.confirmed
    ) {
      this.confirmed = lsn;
    }
    if (reply) void this.service.acknowledge(lsnText(this.confirmed));
  }
}
