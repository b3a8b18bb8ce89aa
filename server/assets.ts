// Files the server reads at run time, located from the project's root. This module sits one
// level below the root in the sources (server/) and so does the built server (dist/msr.mjs,
// which holds this module too), so both find them.
const ROOT = new URL('../', import.meta.url);

/** The numbered migrations. */
export const SQL_DIR = new URL('sql/', ROOT);
/** The viewer's page, styles and scripts (bundled for the browser on first request). */
export const WEB_DIR = new URL('web/', ROOT);
/** The demo city's SQL. */
export const DEMO_SQL_DIR = new URL('server/demo/', ROOT);
/**
 * The ingest's decoding thread: built beside the server (dist/decode-worker.mjs), or its source
 * when the server itself runs from source (tests, tsx).
 */
export const DECODE_WORKER = import.meta.url.endsWith('.ts')
  ? new URL('server/ingest/decode-worker.ts', ROOT)
  : new URL('dist/decode-worker.mjs', ROOT);
