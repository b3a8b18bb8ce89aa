import type pg from 'pg';
import type { CaptureConfig } from '../config.js';
import { inTransaction } from '../db/transaction.js';
import { writeChanges } from '../ingest/writer.js';
import type { SourceCatalog, SourceTable } from './catalog.js';
import type { CapturedChange } from './changes.js';
import { KafkaSink } from './kafka-sink.js';
import { readTablesNow } from './snapshot.js';
import { sourceClientConfig } from './source.js';

/**
 * The tables of `collections` (schema.table) as the source's publication has them; a table
 * outside the publication is refused, by name.
 */
export async function publishedTables(
  catalog: SourceCatalog,
  publication: string,
  collections: readonly string[],
): Promise<{ tables: SourceTable[] } | { refused: string }> {
  const published = await catalog.publicationTables(publication);
  const chosen = collections.map((c) => published.find((t) => `${t.schema}.${t.name}` === c));
  const missing = collections.filter((_, i) => !chosen[i]);
  if (missing.length > 0) return { refused: `not in publication ${publication}: ${missing.join(', ')}` };
  return { tables: chosen as SourceTable[] };
}

/**
 * Snapshots tables of a captured source again while its stream goes on (readTablesNow): into
 * MSR's database in one transaction, or with CAPTURE_TO=kafka into Kafka. Returns the row count.
 */
export async function snapshotAgain(
  config: CaptureConfig,
  tables: readonly SourceTable[],
  into: pg.Pool | KafkaSink,
): Promise<number> {
  const read = (write: (changes: CapturedChange[]) => Promise<void>) =>
    readTablesNow(sourceClientConfig(config), tables, config.sourceName, write);
  return into instanceof KafkaSink
    ? read(async (changes) => void (await into.send(changes)))
    : inTransaction(into, (client) => read((changes) => writeChanges(client, changes)));
}
