import { createApp, type App, type AppOptions } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';

/**
 * MSR in this process for a test or a benchmark: on the given database (no demo unless asked), no
 * authentication, any free port, then whatever `env` sets (variables as in the README) and
 * `options` (createApp's hooks).
 */
export function startMsr(
  databaseUrl: string,
  env: Record<string, string | undefined> = {},
  options: AppOptions = {},
): Promise<App> {
  return createApp(loadConfig({ DATABASE_URL: databaseUrl, AUTH_MODE: 'none', PORT: '0', ...env }), options);
}
