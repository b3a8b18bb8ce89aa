import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';
import { WEB_DIR } from '../assets.js';
import type { Route } from './route.js';

/** A module of web/ bundled by esbuild (with the protocol client) on first request, then kept. */
function bundled(entry: string): () => Promise<string> {
  let bundle: Promise<string> | undefined;
  return () =>
    (bundle ??= build({
      entryPoints: [new URL(entry, WEB_DIR).pathname],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      minify: true,
    }).then((result) => result.outputFiles[0]!.text));
}

/**
 * The viewer page at /: static HTML and CSS and its script; and `/msr-player.js`, the
 * <msr-player> element alone, for other pages to embed.
 */
export function viewerRoutes(): Route[] {
  const script = (entry: string): Route['handler'] => {
    const code = bundled(entry);
    return async () => ({
      status: 200,
      body: await code(),
      headers: { 'content-type': 'text/javascript; charset=utf-8' },
    });
  };
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
    { method: 'get', path: '/viewer.js', access: 'public', handler: script('viewer.ts') },
    { method: 'get', path: '/msr-player.js', access: 'public', handler: script('msr-player.ts') },
  ];
}
