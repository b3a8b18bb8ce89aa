import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction: committed when it resolves, rolled back when it throws. Given a
 * pool, on a connection of its own, which goes back to the pool afterwards unless its rollback
 * failed too (then it is broken and is not lent again; one that refused for a reason of the work's
 * own, a limit or a conflict, is fine). Given a connection, on that one, which stays the caller's.
 */
export async function inTransaction<T>(
  db: Pool | PoolClient,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const lent = !isClient(db);
  const client = isClient(db) ? db : await db.connect();
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
    if (lent) client.release(broken);
  }
}

/** A pool's connection (it has release) rather than the pool. */
const isClient = (db: Pool | PoolClient): db is PoolClient => 'release' in db;
