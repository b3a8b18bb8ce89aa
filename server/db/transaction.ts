import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction on a connection of its own: committed when it resolves, rolled
 * back when it throws (and the connection, which may be broken, is not lent again).
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    broken = err as Error;
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release(broken);
  }
}
