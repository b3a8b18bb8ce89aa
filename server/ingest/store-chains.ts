/** How a batch's store ended: stored and its offsets committed, or not (kafkajs must fetch it again). */
export interface StoreOutcome {
  readonly stored: boolean;
  /** The batch's first offset. */
  readonly from: string;
  /** What stopped it, to be raised to kafkajs as the next batch's error (kafkajs then rejoins or restarts). */
  readonly error?: unknown;
}

/**
 * A partition's batches are stored one after another, each while kafkajs fetches and the ingest
 * decodes the next (kafkajs fetches again only once every batch of its last fetch has returned).
 * Within a partition a batch is stored only after the one before it was, so offsets are
 * committed in order and never past a batch that was not stored: a batch fetched past one that
 * failed is dropped, and kafkajs fetches again from the failed one (the caller seeks there).
 */
export class StoreChains {
  private readonly last = new Map<string, Promise<StoreOutcome>>();

  /**
   * Waits for the partition's previous batch; whether the batch from `from` may be stored. The
   * previous batch's error, if any, is thrown here once, by the batch fetched again in its place.
   */
  async admit(topic: string, partition: number, from: string): Promise<boolean> {
    const key = keyOf(topic, partition);
    const previous = await this.last.get(key);
    if (!previous || previous.stored) return true;
    if (BigInt(from) > BigInt(previous.from)) return false;
    this.last.delete(key);
    if (previous.error !== undefined) throw previous.error;
    return true;
  }

  /** The partition's batch now being stored. */
  add(topic: string, partition: number, storing: Promise<StoreOutcome>): void {
    this.last.set(keyOf(topic, partition), storing);
  }

  /** Forgets every partition (a new consumer fetches from the committed offsets). */
  clear(): void {
    this.last.clear();
  }
}

const keyOf = (topic: string, partition: number) => `${partition}\u0000${topic}`;
