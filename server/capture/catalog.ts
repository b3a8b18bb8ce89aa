import type pg from 'pg';
import type { ColumnType } from './values.js';

/** A captured table as the source's catalog describes it. */
export interface SourceTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly columns: ReadonlyMap<string, ColumnType>;
  /** Primary key columns; empty for a table without one. */
  readonly key: readonly string[];
  /** pg_class.relreplident: f (full), d (default: the key), i (an index), n (nothing). */
  readonly replicaIdentity: string;
}

interface TypeRow {
  oid: number;
  name: string;
  category: string;
  element: number;
}

/**
 * What the capture needs from the source's catalog (column types, primary keys, replica identity),
 * read once per table and again when pgoutput announces that a table changed.
 */
export class SourceCatalog {
  private readonly types = new Map<number, ColumnType>();
  private readonly tables = new Map<number, SourceTable>();

  constructor(private readonly source: pg.Pool | pg.Client) {}

  cached(oid: number): SourceTable | undefined {
    return this.tables.get(oid);
  }

  /** Reads (again) what a table looks like now. */
  async load(oid: number): Promise<SourceTable> {
    const { rows } = await this.source.query<{
      schema: string;
      name: string;
      replident: string;
      columns: { name: string; type: number }[];
      key: string[] | null;
    }>(
      `select n.nspname as schema, c.relname as name, c.relreplident as replident,
              (select json_agg(json_build_object('name', a.attname, 'type', a.atttypid::int) order by a.attnum)
                 from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
              (select array_agg(a.attname::text order by a.attname)
                 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                where i.indrelid = c.oid and i.indisprimary) as key
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.oid = $1`,
      [oid],
    );
    const row = rows[0];
    if (!row) throw new Error(`the source has no table with oid ${oid} any more`);
    await this.loadTypes(row.columns.map((c) => c.type));
    const table: SourceTable = {
      oid,
      schema: row.schema,
      name: row.name,
      columns: new Map(row.columns.map((c) => [c.name, this.types.get(c.type)!])),
      key: row.key ?? [],
      replicaIdentity: row.replident,
    };
    this.tables.set(oid, table);
    return table;
  }

  /** The tables of a publication, each loaded. */
  async publicationTables(publication: string): Promise<SourceTable[]> {
    const { rows } = await this.source.query<{ oid: number }>(
      `select format('%I.%I', schemaname, tablename)::regclass::oid::int as oid
         from pg_publication_tables where pubname = $1 order by schemaname, tablename`,
      [publication],
    );
    const tables: SourceTable[] = [];
    for (const { oid } of rows) tables.push(await this.load(oid));
    return tables;
  }

  private async loadTypes(oids: readonly number[]): Promise<void> {
    const missing = [...new Set(oids)].filter((o) => !this.types.has(o));
    if (missing.length === 0) return;
    // A domain is described by its base type; an array by its element type (loaded first).
    const { rows } = await this.source.query<TypeRow>(
      `select t.oid::int as oid, coalesce(b.typname, t.typname)::text as name,
              coalesce(b.typcategory, t.typcategory)::text as category,
              coalesce(b.typelem, t.typelem)::int as element
         from pg_type t left join pg_type b on t.typtype = 'd' and b.oid = t.typbasetype
        where t.oid = any($1::oid[])`,
      [missing],
    );
    const isArray = (r: TypeRow) => r.category === 'A' && r.element !== 0;
    await this.loadTypes(rows.filter(isArray).map((r) => r.element));
    for (const r of rows) {
      this.types.set(
        r.oid,
        isArray(r)
          ? { category: r.category, name: r.name, element: this.types.get(r.element)! }
          : { category: r.category, name: r.name },
      );
    }
  }
}
