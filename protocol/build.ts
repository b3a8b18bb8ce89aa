// Builds the publishable package: ESM and declarations from tsc, with a manifest whose exports
// point at them (the manifest beside the sources points at the .ts files, which this repository
// runs directly). Usage: npm run build -w @msr/protocol [-- --out DIR]   (default protocol/dist)
//   then: npm publish protocol/dist   (or npm pack protocol/dist)
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outFlag = process.argv.indexOf('--out');
const out = path.resolve(outFlag === -1 ? path.join(here, 'dist') : process.argv[outFlag + 1]!);

await rm(out, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', path.join(here, 'tsconfig.build.json'), '--outDir', out], {
  stdio: 'inherit',
});

const manifest = JSON.parse(await readFile(path.join(here, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
  scripts?: unknown;
};
const built = (source: string) => source.replace(/\.ts$/, '');
manifest.exports = Object.fromEntries(
  Object.entries(manifest.exports as Record<string, string>).map(([entry, source]) => [
    entry,
    { types: `${built(source)}.d.ts`, default: `${built(source)}.js` },
  ]),
);
delete manifest.scripts;
await writeFile(path.join(out, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
for (const doc of ['README.md', 'PROTOCOL.md']) await copyFile(path.join(here, doc), path.join(out, doc));
console.log(`built @msr/protocol into ${out}`);
