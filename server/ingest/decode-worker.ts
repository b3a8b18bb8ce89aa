import { parentPort } from 'node:worker_threads';
import { decodeResults, type RawRecord } from './decode-batch.js';

// A decoding thread of the ingest (decode-pool.ts): records in, results out. Its per-topic cache
// of parsed Debezium schemas (schema-prefix.ts) lives here, with the parsing it saves.

export interface DecodeRequest {
  readonly id: number;
  readonly topic: string;
  readonly records: readonly RawRecord[];
}

parentPort!.on('message', ({ id, topic, records }: DecodeRequest) => {
  parentPort!.postMessage({ id, results: decodeResults(topic, records.map(asBuffers)) });
});

/** Buffers arrive as plain Uint8Arrays; the decoder reads them as Buffers (no copy). */
function asBuffers(record: RawRecord): RawRecord {
  const buffer = (bytes: Uint8Array | null) =>
    bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { offset: record.offset, key: buffer(record.key), value: buffer(record.value) };
}
