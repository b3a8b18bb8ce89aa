import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { buildServer } from '../../scripts/build-server.js';
import { pino } from 'pino';
import { DecodePool, decodeRequest } from '../../server/ingest/decode-pool.js';
import { decodeResults, type RawRecord } from '../../server/ingest/decode-batch.js';
import type { CopyReadyEvent } from '../../server/ingest/change.js';
import { debeziumRecords } from '../../load/debezium-records.js';

// The ingest decodes fetched batches on a thread of its own. What it hands back must be what
// decoding in place gives, record for record, with the records' own bytes, poison records and
// tombstones included; and a thread that dies must not cost a batch.

const TOPIC = 'bench.city.vehicle';
/** Warnings the pool logs: each is a batch that fell back to decoding in place. */
const warnings: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });

/** Like a Kafka fetch: every record a view into one shared response buffer. */
function fetched(): RawRecord[] {
  const records = debeziumRecords(300, 40);
  const parts = records.flatMap((r) => [Buffer.from(r.key), Buffer.from(r.value)]);
  const poison = Buffer.from('{"schema": not json');
  const response = Buffer.concat([...parts, poison]);
  let at = 0;
  const view = (length: number) => response.subarray(at, (at += length));
  const out: RawRecord[] = records.map((r, i) => ({
    offset: String(100 + i),
    key: view(parts[2 * i]!.length),
    value: view(parts[2 * i + 1]!.length),
  }));
  out.splice(7, 0, { offset: '7000', key: Buffer.from('{"id":7}'), value: null }); // a tombstone
  out.push({ offset: '9000', key: null, value: view(poison.length) });
  return out;
}

describe('DecodePool', () => {
  const pools: DecodePool[] = [];
  const pool = (threads: number) => {
    const p = new DecodePool(threads, log);
    pools.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.stop()));
    warnings.length = 0;
  });

  it('decodes on a thread exactly as in place, keeping each record its own bytes', async () => {
    const records = fetched();
    const inPlace = await pool(0).decode(TOPIC, 2, records);
    const threaded = await pool(1).decode(TOPIC, 2, records);
    expect(warnings).toEqual([]); // decoded on the thread, not in place after a failure
    expect(threaded).toEqual(inPlace);
    expect(threaded.changes).toHaveLength(300);
    expect(threaded.skipped).toBe(1);
    expect(threaded.failures.map((f) => [f.offset, f.reason])).toEqual([['9000', 'NOT_JSON']]);
    expect(threaded.failures[0]!.value).toBe(records.at(-1)!.value);
    const first = threaded.changes[0]!;
    expect(first).toMatchObject({ topic: TOPIC, partition: 2, offset: '100', key: records[0]!.key });
    expect(first.event).toMatchObject({ entityId: '1', op: 'c', unavailable: [] });
    expect(typeof first.event.eventTimeUs).toBe('bigint');
    // Its columns come back as the COPY text the writer sends (event-columns.ts).
    const columns = (first.event as CopyReadyEvent).copyColumns.split('\t');
    expect(columns.filter((_, i) => i !== 6)).toEqual([
      'bench',
      'city',
      'vehicle',
      '1',
      'c',
      '\\N',
      '1000000',
      '10000',
    ]);
    expect(JSON.parse(columns[6]!)).toMatchObject({ id: 1, status: 'stopped', speed: 0 });
  });

  it('spreads batches over its threads and answers each with its own records', async () => {
    const p = pool(2);
    const records = fetched();
    const batches = await Promise.all(
      [0, 1, 2, 3].map((partition) =>
        p.decode(TOPIC, partition, records.slice(partition * 50, partition * 50 + 50)),
      ),
    );
    expect(warnings).toEqual([]);
    expect((p as unknown as { threads: unknown[] }).threads).toHaveLength(2);
    batches.forEach((batch, partition) => {
      expect(batch.changes.map((c) => c.offset)).toEqual(
        records
          .slice(partition * 50, partition * 50 + 50)
          .filter((r) => r.value !== null)
          .map((r) => r.offset),
      );
      expect(batch.changes.every((c) => c.partition === partition)).toBe(true);
    });
  });

  it('decodes in place the batches of a thread that died, then starts another', async () => {
    const p = pool(1);
    const records = fetched();
    await p.decode(TOPIC, 0, records.slice(0, 10)); // the thread is up
    const threads = (p as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads;
    const pending = p.decode(TOPIC, 0, records);
    await threads[0]!.worker.terminate();
    const batch = await pending;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('decoded in place');
    expect(batch.changes).toHaveLength(300);
    expect(batch.failures).toHaveLength(1);
    const after = await p.decode(TOPIC, 1, records.slice(0, 20));
    expect(after.changes).toHaveLength(19); // and the tombstone
    expect(after.skipped).toBe(1);
    expect(warnings).toHaveLength(1);
    expect((p as unknown as { threads: unknown[] }).threads).toHaveLength(1);
  });

  it('runs as built for npm start (dist/decode-worker.mjs)', async () => {
    await buildServer();
    const worker = new Worker(new URL('../../dist/decode-worker.mjs', import.meta.url));
    try {
      const records = fetched();
      const answer = new Promise<{ id: number; results: unknown }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const request = decodeRequest(7, TOPIC, records);
      worker.postMessage(request, [request.bytes, request.bounds.buffer]);
      expect(await answer).toEqual({ id: 7, results: decodeResults(TOPIC, records) });
    } finally {
      await worker.terminate();
    }
  });
});
