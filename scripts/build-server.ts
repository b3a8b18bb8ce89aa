// Builds the server that `npm start` runs: server/main.ts and the client package it imports, in
// one ES module (dist/msr.mjs, with its source map; the ingest's decoding thread in
// dist/decode-worker.mjs), the installed packages left as imports.
// Running the sources through tsx instead holds about 25 MB more memory for the life of the
// process (the loader and its transform cache). Usage: tsx scripts/build-server.ts
import { readFile, rename, writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = new URL('../', import.meta.url);
/** The built server, one level below the root as server/assets.ts expects. */
const SERVER_BUNDLE = fileURLToPath(new URL('dist/msr.mjs', ROOT));

interface Manifest {
  readonly dependencies: Record<string, string>;
  readonly scripts: Record<string, string>;
}

const manifest = async () => JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8')) as Manifest;

/**
 * Node's arguments as `npm start` gives them (package.json is their one owner), for tests and
 * benchmarks that run the server as users do.
 */
export async function startArguments(): Promise<string[]> {
  const start = (await manifest()).scripts.start!;
  const [command, ...args] = start.split(/\s+/);
  if (command !== 'node' || args.at(-1) !== 'dist/msr.mjs')
    throw new Error(`package.json's start script is not "node ... dist/msr.mjs": ${start}`);
  return [...args.slice(0, -1), SERVER_BUNDLE];
}

/** Builds dist/msr.mjs; concurrent builds are safe (each file is renamed into place whole). */
export async function buildServer(): Promise<void> {
  const { dependencies } = await manifest();
  const result = await build({
    // The ingest's decoding thread is a module of its own (server/assets.ts finds it).
    entryPoints: {
      msr: fileURLToPath(new URL('server/main.ts', ROOT)),
      'decode-worker': fileURLToPath(new URL('server/ingest/decode-worker.ts', ROOT)),
    },
    outdir: fileURLToPath(new URL('dist/', ROOT)),
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    // The workspace client package is TypeScript: it is bundled; installed packages are imported.
    external: Object.keys(dependencies).filter((name) => name !== '@msr/protocol'),
    write: false,
    logLevel: 'warning',
  });
  await mkdir(new URL('dist/', ROOT), { recursive: true });
  // The map first, so the module never names a map that is not there yet.
  const isMap = (path: string) => Number(path.endsWith('.map'));
  const files = [...result.outputFiles].sort((a, b) => isMap(b.path) - isMap(a.path));
  for (const file of files) {
    const temporary = `${file.path}.${process.pid}.tmp`;
    await writeFile(temporary, file.contents);
    await rename(temporary, file.path);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildServer();
