import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Uws from 'uWebSockets.js';

/**
 * Loads uWebSockets.js's native binary directly. The package's own entry silently falls back to a
 * slow pure-JS server when the binary does not load; MSR would rather not start than run that.
 */
function loadNative(): typeof Uws {
  const require = createRequire(import.meta.url);
  const root = path.dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = path.join(
    root,
    'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
  );
  try {
    return require(binary) as typeof Uws;
  } catch (err) {
    throw new Error(
      `uWebSockets.js native module did not load (${binary}): ${(err as Error).message}. ` +
        `MSR needs Node.js 20 on linux-x64 or linux-arm64 with glibc; it does not run on the slow fallback.`,
      { cause: err },
    );
  }
}

export const uws = loadNative();
export type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  us_listen_socket,
  WebSocket,
  WebSocketBehavior,
} from 'uWebSockets.js';
