import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction on a connection of its own: committed when it resolves, rolled
 * back when it throws. A connection whose rollback fails too is broken and is not lent again; one
 * that refused for a reason of the work's own (a limit, a conflict) goes back to the pool.
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
    await client.query('rollback').catch((failed: Error) => (broken = failed));
    throw err;
  } finally {
    client.release(broken);
  }
}
