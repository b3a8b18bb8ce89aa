import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { DECODE_WORKER } from '../assets.js';
import {
  assembleBatch,
  decodeResults,
  type DecodedBatch,
  type DecodeResult,
  type RawRecord,
  type RecordBytes,
} from './decode-batch.js';
import type { DecodeRequest } from './decode-worker.js';

interface Waiting {
  resolve(results: DecodeResult[]): void;
  reject(err: Error): void;
}

interface DecodeThread {
  readonly worker: Worker;
  readonly waiting: Map<number, Waiting>;
}

/**
 * Decodes Kafka batches on threads of their own, so the main thread only fetches, writes and
 * serves replay while JSON.parse runs beside it (on the main thread it was about half of the
 * ingest's Node time). With no threads configured it decodes in place. A thread that fails is
 * replaced, and the batches it held are decoded in place: a batch is never lost to it.
 */
export class DecodePool {
  private threads: DecodeThread[] = [];
  private nextId = 0;
  private stopped = false;

  constructor(
    private readonly size: number,
    private readonly log: Logger,
  ) {}

  async decode(topic: string, partition: number, records: readonly RawRecord[]): Promise<DecodedBatch> {
    let results: DecodeResult[];
    if (this.size === 0 || this.stopped) results = decodeResults(topic, records);
    else {
      try {
        results = await this.onThread(topic, records);
      } catch (err) {
        this.log.warn({ err, topic, partition }, 'a decoding thread failed; this batch is decoded in place');
        results = decodeResults(topic, records);
      }
    }
    return assembleBatch(topic, partition, records, results);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private onThread(topic: string, records: readonly RawRecord[]): Promise<DecodeResult[]> {
    while (this.threads.length < this.size) this.threads.push(this.startThread());
    const thread = this.threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
    const id = this.nextId++;
    const request = decodeRequest(id, topic, records);
    return new Promise((resolve, reject) => {
      thread.waiting.set(id, { resolve, reject });
      thread.worker.postMessage(request, [request.bytes, request.bounds.buffer]);
    });
  }

  private startThread(): DecodeThread {
    const thread: DecodeThread = { worker: startWorker(), waiting: new Map() };
    thread.worker.on('message', ({ id, results }: { id: number; results: DecodeResult[] }) => {
      const waiting = thread.waiting.get(id);
      thread.waiting.delete(id);
      waiting?.resolve(results);
    });
    const fail = (err: Error) => {
      this.threads = this.threads.filter((t) => t !== thread);
      for (const waiting of thread.waiting.values()) waiting.reject(err);
      thread.waiting.clear();
    };
    thread.worker.on('error', fail);
    thread.worker.on('exit', (code) => fail(new Error(`the decoding thread exited with code ${code}`)));
    return thread;
  }
}

function startWorker(): Worker {
  if (!DECODE_WORKER.pathname.endsWith('.ts')) return new Worker(DECODE_WORKER);
  // From source the thread loads TypeScript the way its parent does, through tsx.
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(
    `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(DECODE_WORKER.href)}); })`,
    { eval: true },
  );
}

/**
 * A batch as the thread takes it: its keys and values copied into one buffer, and where each one
 * lies, both moved to the thread rather than copied again. Each Kafka record is a view into its
 * whole fetch response, which a plain postMessage would copy once per batch; and a number per
 * boundary costs the main thread less to send than an object and two views per record.
 */
export function decodeRequest(id: number, topic: string, records: readonly RecordBytes[]): DecodeRequest {
  let size = 0;
  for (const r of records) size += (r.key?.length ?? 0) + (r.value?.length ?? 0);
  const bytes = new Uint8Array(size);
  const bounds = new Int32Array(records.length * 4);
  let at = 0;
  let b = 0;
  const place = (part: Buffer | null) => {
    if (part === null) {
      bounds[b++] = -1;
      bounds[b++] = -1;
      return;
    }
    bytes.set(part, at);
    bounds[b++] = at;
    bounds[b++] = at += part.length;
  };
  for (const r of records) {
    place(r.key);
    place(r.value);
  }
  return { id, topic, bytes: bytes.buffer, bounds };
}
