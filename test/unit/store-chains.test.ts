import { describe, expect, it } from 'vitest';
import { StoreChains, type StoreOutcome } from '../../server/ingest/store-chains.js';

// The order the ingest keeps within a partition while a batch is stored beside the next fetch.

function deferred(): { promise: Promise<StoreOutcome>; resolve: (o: StoreOutcome) => void } {
  let resolve!: (o: StoreOutcome) => void;
  const promise = new Promise<StoreOutcome>((r) => (resolve = r));
  return { promise, resolve };
}

describe('store chains', () => {
  it('admits a partition first batch at once, and the next only once the one before is stored', async () => {
    const chains = new StoreChains();
    expect(await chains.admit('t', 0, '0')).toBe(true);
    const first = deferred();
    chains.add('t', 0, first.promise);
    let admitted: boolean | undefined;
    const next = chains.admit('t', 0, '500').then((ok) => (admitted = ok));
    // Another partition (or topic) does not wait for it.
    expect(await chains.admit('t', 1, '0')).toBe(true);
    expect(await chains.admit('u', 0, '0')).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(admitted).toBeUndefined();
    first.resolve({ stored: true, from: '0' });
    await next;
    expect(admitted).toBe(true);
  });

  it('drops batches fetched past one that was not stored, until it is fetched again, and raises its error once', async () => {
    const chains = new StoreChains();
    const failure = new Error('offset commit refused');
    chains.add('t', 0, Promise.resolve({ stored: false, from: '500', error: failure }));
    expect(await chains.admit('t', 0, '1000')).toBe(false);
    expect(await chains.admit('t', 0, '1500')).toBe(false);
    // Fetched again from the batch that failed (or from before it): its error, then on as usual.
    await expect(chains.admit('t', 0, '500')).rejects.toBe(failure);
    expect(await chains.admit('t', 0, '500')).toBe(true);
  });

  it('admits the batch fetched again after one not stored without an error (lost partition)', async () => {
    const chains = new StoreChains();
    chains.add('t', 0, Promise.resolve({ stored: false, from: '500' }));
    expect(await chains.admit('t', 0, '501')).toBe(false);
    expect(await chains.admit('t', 0, '200')).toBe(true);
    expect(await chains.admit('t', 0, '700')).toBe(true);
  });

  it('forgets every partition on clear', async () => {
    const chains = new StoreChains();
    chains.add('t', 0, Promise.resolve({ stored: false, from: '0', error: new Error('x') }));
    chains.clear();
    expect(await chains.admit('t', 0, '100')).toBe(true);
  });
});
