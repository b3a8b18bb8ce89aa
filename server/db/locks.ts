/**
 * PostgreSQL advisory lock keys: every lock MSR takes on its database, in one place so that no two
 * jobs share a key by accident. Each key is fixed forever: servers of different versions sharing a
 * database must agree on it.
 */
export const AdvisoryLock = {
  /** Migrations: one process at a time applies them (session lock, held across the files). */
  MIGRATION: 7_305_118_001,
  /** The demo seed: one process seeds an empty database. */
  DEMO_SEED: 7_305_118_002,
  /** Session admission: counting active sessions and inserting one is atomic (transaction lock). */
  SESSION_ADMISSION: 7_305_118_003,
  /** Maintenance (refresh, snapshot rotation, retention): one server at a time per database. */
  MAINTENANCE: 0x6d73_7202,
  /** The aggregate's periodic refresh: one server at a time per database. */
  AGGREGATE_REFRESH: 0x6d73_7203,
  /** The built-in capture: one process streams a slot (the slot's name hashed is the second key). */
  CAPTURE: 0x6d73_7204,
} as const;
