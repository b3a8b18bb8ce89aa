import { parentPort } from 'node:worker_threads';
import { decodeResults, type RecordBytes } from './decode-batch.js';

// A decoding thread of the ingest (decode-pool.ts): records in, results out. Its per-topic cache
// of parsed Debezium schemas (schema-prefix.ts) lives here, with the parsing it saves.

export interface DecodeRequest {
  readonly id: number;
  readonly topic: string;
  /** The batch's keys and values back to back, moved to the thread, not copied (decode-pool.ts). */
  readonly bytes: ArrayBuffer;
  /** Per record four numbers: where its key starts and ends in `bytes`, then its value; -1 for null. */
  readonly bounds: Int32Array<ArrayBuffer>;
}

parentPort!.on('message', ({ id, topic, bytes, bounds }: DecodeRequest) => {
  parentPort!.postMessage({ id, results: decodeResults(topic, records(bytes, bounds)) });
});

/** The batch's records as Buffers over the one moved buffer (views, no copy). */
function records(bytes: ArrayBuffer, bounds: Int32Array<ArrayBuffer>): RecordBytes[] {
  const view = (start: number, end: number) => (start < 0 ? null : Buffer.from(bytes, start, end - start));
  const out: RecordBytes[] = [];
  for (let i = 0; i < bounds.length; i += 4) {
    out.push({ key: view(bounds[i]!, bounds[i + 1]!), value: view(bounds[i + 2]!, bounds[i + 3]!) });
  }
  return out;
}
