import type { App } from '../../server/app.js';

/** Polls `probe` until it yields a value (not undefined or false); throws naming `what` on timeout. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until the app's demo city has its history and is live. */
export function demoLive(app: App): Promise<true> {
  return until('the demo history', async () => app.demo?.status.state === 'live', 60_000, 100);
}
