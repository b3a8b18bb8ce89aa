import type { Pool } from 'pg';
import type { EntityFilter } from './entity-filter.js';
import { readKeyframe, type KeyframeEntity } from './keyframe.js';
import type { Micros } from './micros.js';

/**
 * Chunks a read keeps for callers that join it late. Past them the read is no longer shared and
 * drops each chunk once its readers have taken it, so a keyframe of 200,000 entities is never held
 * whole for someone who might still come.
 */
const JOINABLE_CHUNKS = 16;

export interface KeyframeReadOptions {
  readonly chunkSize?: number;
  readonly signal?: AbortSignal;
  /** Where to read (a replica); reads on different servers are not shared. Default: the pool given. */
  readonly reader?: { readonly name: string; readonly pool: Pool };
}

/** One database read of a keyframe and the callers taking its chunks, each at its own pace. */
class SharedRead {
  /** Chunks from index `dropped` on; earlier ones every reader has taken. */
  private readonly chunks: KeyframeEntity[][] = [];
  private dropped = 0;
  private finished = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void)[] = [];
  private readonly positions = new Set<{ at: number }>();
  private readonly controller = new AbortController();

  constructor(
    source: (signal: AbortSignal) => AsyncGenerator<KeyframeEntity[]>,
    private readonly onEnd: () => void,
  ) {
    void this.pump(source(this.controller.signal));
  }

  get joinable(): boolean {
    return (
      !this.finished &&
      !this.controller.signal.aborted &&
      this.dropped === 0 &&
      this.chunks.length <= JOINABLE_CHUNKS
    );
  }

  /** A reader from the first chunk kept; it counts as one from now, not from its first next(). */
  reader(signal?: AbortSignal): AsyncGenerator<KeyframeEntity[]> {
    const position = { at: this.dropped };
    this.positions.add(position);
    return this.take(position, signal);
  }

  private async *take(position: { at: number }, signal?: AbortSignal): AsyncGenerator<KeyframeEntity[]> {
    try {
      for (;;) {
        if (signal?.aborted) return;
        if (position.at < this.dropped + this.chunks.length) {
          const chunk = this.chunks[position.at - this.dropped]!;
          position.at += 1;
          this.trim();
          yield chunk;
          continue;
        }
        if (this.failure) throw this.failure.error;
        if (this.finished) return;
        await new Promise<void>((resolve) => this.wake.push(resolve));
      }
    } finally {
      this.positions.delete(position);
      // Nobody is left to read it: the database read stops too.
      if (this.positions.size === 0 && !this.finished) {
        this.controller.abort();
        this.onEnd();
      }
    }
  }

  private async pump(source: AsyncGenerator<KeyframeEntity[]>): Promise<void> {
    try {
      for await (const chunk of source) {
        this.chunks.push(chunk);
        this.trim();
        this.notify();
      }
    } catch (error) {
      this.failure = { error };
    } finally {
      this.finished = true;
      this.onEnd();
      this.notify();
    }
  }

  /** Once no one can join, chunks every reader has taken are let go. */
  private trim(): void {
    if (this.joinable) return;
    const lowest = Math.min(...[...this.positions].map((p) => p.at));
    const drop = Math.min(lowest, this.dropped + this.chunks.length) - this.dropped;
    if (drop > 0) {
      this.chunks.splice(0, drop);
      this.dropped += drop;
    }
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }
}

/**
 * Keyframe reads shared by callers asking for the same time, filter and chunk size while one is
 * under way (single flight): a team opening sessions on one incident costs one database read.
 * Each caller still gets every chunk from the first, as if it had read alone.
 */
export class KeyframeReads {
  private readonly reads = new Map<string, SharedRead>();

  constructor(
    private readonly pool: Pool,
    private readonly onRead: (shared: boolean) => void = () => undefined,
  ) {}

  read(t: Micros, filter: EntityFilter, options: KeyframeReadOptions = {}): AsyncGenerator<KeyframeEntity[]> {
    const key = JSON.stringify([
      options.reader?.name ?? null,
      t,
      filter.tables ?? null,
      filter.entities ?? null,
      options.chunkSize ?? null,
    ]);
    const current = this.reads.get(key);
    if (current?.joinable) {
      this.onRead(true);
      return current.reader(options.signal);
    }
    this.onRead(false);
    const read: SharedRead = new SharedRead(
      (signal) =>
        readKeyframe(options.reader?.pool ?? this.pool, t, filter, { chunkSize: options.chunkSize, signal }),
      () => {
        if (this.reads.get(key) === read) this.reads.delete(key);
      },
    );
    this.reads.set(key, read);
    return read.reader(options.signal);
  }

  /** Reads under way (for tests and metrics). */
  get underWay(): number {
    return this.reads.size;
  }
}
