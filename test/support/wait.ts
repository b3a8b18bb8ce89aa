import type { App } from '../../server/app.js';
import { until } from '../../scripts/services/until.js';

export { until };

/** Waits until the app's demo city has its history and is live. */
export function demoLive(app: App): Promise<true> {
  return until('the demo history', async () => app.demo?.status.state === 'live', 60_000, 100);
}
