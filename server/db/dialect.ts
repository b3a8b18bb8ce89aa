import type { PoolClient } from 'pg';

export type Dialect = 'postgres' | 'timescaledb';

/**
 * TimescaleDB when the extension can be created here, plain PostgreSQL otherwise. A database that
 * was already migrated keeps the dialect it was migrated with.
 */
export async function detectDialect(client: PoolClient): Promise<Dialect> {
  const recorded = await client.query<{ dialect: Dialect }>(
    `select dialect from msr.schema_migration order by version limit 1`,
  );
  if (recorded.rows[0]) return recorded.rows[0].dialect;
  const available = await client.query(`select 1 from pg_available_extensions where name = 'timescaledb'`);
  return available.rowCount ? 'timescaledb' : 'postgres';
}
