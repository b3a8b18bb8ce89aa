import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';
import type { Route } from './route.js';

const WEB_DIR = new URL('../../web/', import.meta.url);

/**
 * The viewer page at /: static HTML and CSS, and the TypeScript (with the protocol client)
 * bundled by esbuild on first request, then served from memory.
 */
export function viewerRoutes(): Route[] {
  let bundle: Promise<string> | undefined;
  const script = () =>
    (bundle ??= build({
      entryPoints: [new URL('viewer.ts', WEB_DIR).pathname],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      // The client's Node 20 fallback; browsers have a global WebSocket and never load it.
      external: ['ws'],
      target: 'es2022',
      write: false,
      minify: true,
      sourcemap: 'inline',
    }).then((result) => result.outputFiles[0]!.text));
  const file = (name: string, type: string): Route['handler'] => {
    let cached: Promise<Buffer> | undefined;
    return async () => ({
      status: 200,
      body: await (cached ??= readFile(new URL(name, WEB_DIR))),
      headers: { 'content-type': type },
    });
  };
  return [
    { method: 'get', path: '/', access: 'public', handler: file('index.html', 'text/html; charset=utf-8') },
    {
      method: 'get',
      path: '/viewer.css',
      access: 'public',
      handler: file('viewer.css', 'text/css; charset=utf-8'),
    },
    {
      method: 'get',
      path: '/viewer.js',
      access: 'public',
      handler: async () => ({
        status: 200,
        body: await script(),
        headers: { 'content-type': 'text/javascript; charset=utf-8' },
      }),
    },
  ];
}
