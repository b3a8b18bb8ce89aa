import { createApp, type App, type AppOptions } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';

/**
 * A server for a test: on the given database, no authentication, any free port, then whatever
 * the test sets in `env` (variables as in the README) and `options` (createApp's test hooks).
 */
export function startTestApp(
  databaseUrl: string,
  env: Record<string, string | undefined> = {},
  options: AppOptions = {},
): Promise<App> {
  return createApp(loadConfig({ DATABASE_URL: databaseUrl, AUTH_MODE: 'none', PORT: '0', ...env }), options);
}
