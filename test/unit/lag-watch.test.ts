import { Writable } from 'node:stream';
import pino from 'pino';
import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LagWatch, type PartitionLag } from '../../server/ingest/lag-watch.js';

// The ingest's lag as /readyz and the metrics report it: a poll that fails makes it unknown (not the
// figure from before the failure), logs once per failure streak, and a working poll restores it.

function harness() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    }),
  );
  const registry = new Registry();
  const gauge = new Gauge({
    name: 'lag',
    help: 'lag',
    labelNames: ['topic', 'partition'],
    registers: [registry],
  });
  let answer: readonly PartitionLag[] | Error = [];
  const watch = new LagWatch(
    async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    },
    gauge,
    log,
  );
  const gaugeValues = async () => (await gauge.get()).values.map((v) => [v.labels.partition, v.value]);
  return { watch, lines, gaugeValues, answer: (a: readonly PartitionLag[] | Error) => (answer = a) };
}

describe('the ingest lag watch', () => {
  it('reports the polled lag, then unknown after a failed poll, then the lag again', async () => {
    const h = harness();
    h.answer([
      { topic: 'a', partition: 0, lag: 5 },
      { topic: 'a', partition: 1, lag: 7 },
    ]);
    await h.watch.refresh();
    expect(h.watch.lag).toBe(12);
    expect(h.watch.unknown).toBeUndefined();
    expect(await h.gaugeValues()).toEqual([
      ['0', 5],
      ['1', 7],
    ]);

    h.answer(new Error('broker unreachable'));
    await h.watch.refresh();
    await h.watch.refresh();
    expect(h.watch.lag).toBeUndefined();
    expect(h.watch.unknown).toMatch(/^lag unknown since \d{4}-\d\d-\d\dT.*: broker unreachable$/);
    expect(await h.gaugeValues()).toEqual([]);
    expect(h.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'could not poll the ingest lag; it is unknown until a poll works',
    ]);

    h.answer([{ topic: 'a', partition: 0, lag: 1 }]);
    await h.watch.refresh();
    expect(h.watch.lag).toBe(1);
    expect(h.watch.unknown).toBeUndefined();
    expect(h.lines.at(-1)!.msg).toBe('ingest lag known again');
  });

  it('says nothing of a poll that stop() cut short', async () => {
    const h = harness();
    h.answer([{ topic: 'a', partition: 0, lag: 3 }]);
    await h.watch.refresh();
    h.answer(new Error('the ingest is stopping'));
    const cut = h.watch.refresh();
    h.watch.stop();
    await cut;
    expect(h.watch.unknown).toBeUndefined();
    expect(h.lines.filter((l) => l.level >= 40)).toEqual([]);
  });
});
