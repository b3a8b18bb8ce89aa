import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { createTestDatabase, dialect, type TestDatabase } from '../support/database.js';
import {
  generateHistory,
  insertHistory,
  referenceState,
  sqlState,
  type HistoryEvent,
} from '../support/history.js';
import {
  createTopics,
  debeziumRecord,
  serverWithIngest,
  uniquePrefix,
  withProducer,
} from '../support/kafka.js';
import { until } from '../support/wait.js';
import { REFRESH_AGGREGATE } from '../../server/db/sql-fragments.js';

// The recovery drill of the playbook, with real Kafka, real pg_dump/pg_restore and the commands
// users run: ingest, back up, ingest more, destroy the database, standard recovery. Every event
// must be back exactly once and replay at several times must equal the state before the loss
// (recovery point objective zero).

const root = new URL('../../', import.meta.url).pathname;
const HOUR = 3_600_000;
const run = promisify(execFile);

describe('backup and standard recovery (drill)', () => {
  let db: TestDatabase;
  let app: App | undefined;
  let dir: string;
  const prefix = uniquePrefix('drill');
  const groupId = `g-${prefix}`;
  const env = () => ({ ...process.env, ...serverWithIngest(db.url, prefix, groupId) });

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const command = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'server/cli/recovery.ts', ...args], {
      cwd: root,
      env: env(),
      maxBuffer: 16 << 20,
    });
    return JSON.parse(stdout);
  };
  const count = async () =>
    (
      await db.pool.query<{ n: number; records: number }>(
        `select count(*)::int as n, count(distinct (kafka_topic, kafka_partition, kafka_offset))::int as records
           from msr.cdc_event where source = $1`,
        [prefix],
      )
    ).rows[0]!;

  it('brings back every event exactly once and the same replayed state', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-backup-'));
    db = await createTestDatabase();
    await createTopics([
      { topic: `${prefix}.city.vehicle`, partitions: 2 },
      { topic: `${prefix}.city.incident`, partitions: 1 },
    ]);
    const start = Date.now() - 3 * HOUR;
    const events: HistoryEvent[] = generateHistory(41, start, 2 * HOUR, 3000).map((e, i) => ({
      ...e,
      source: prefix,
      lsn: 9000 + i,
    }));
    const [before, after] = [events.slice(0, 1800), events.slice(1800)];
    const produce = (batch: HistoryEvent[]) =>
      withProducer(async (producer) => {
        for (const e of batch) {
          const r = debeziumRecord(e, prefix);
          await producer.send({ topic: r.topic, messages: [{ key: r.key, value: r.value }] });
        }
      });

    app = await createApp(loadConfig(serverWithIngest(db.url, prefix, groupId)), {
      log: createLogger('silent'),
      ingest: { topicRefreshMs: 500, lagPollMs: 500 },
    });
    await produce(before);
    await until('the first events stored', async () => (await count()).n === before.length);
    // The group's offsets are committed after each batch: wait for the last one.
    await until('ingest caught up', async () => app!.ingest!.status.lag === 0);

    const backup = await command('backup', '--dir', dir);
    expect(backup).toMatchObject({ events: before.length, dialect, kafka: { groupId } });
    expect(backup.timescaledbVersion).toBe(dialect === 'timescaledb' ? '2.22.1' : null);
    expect(backup.kafka.offsets.map((o: { topic: string }) => o.topic).sort()).toEqual([
      `${prefix}.city.incident`,
      `${prefix}.city.vehicle`,
      `${prefix}.city.vehicle`,
    ]);

    await produce(after);
    await until('all events stored', async () => (await count()).n === events.length);
    const probes = [0.1, 0.4, 0.75, 1].map((f) => Math.round(start + f * 2 * HOUR));
    const stateBefore = await Promise.all(probes.map((t) => sqlState(db.pool, t)));
    probes.forEach((t, i) => expect(stateBefore[i]).toEqual(referenceState(events, t)));
    await app.stop();
    app = undefined;

    // The loss: the database is gone and comes back empty.
    const name = new URL(db.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    await admin.query(`drop database ${name} with (force)`);
    await admin.query(`create database ${name}`);
    await admin.end();

    const started = Date.now();
    const recovery = await command('restore', '--dir', dir);
    const recoveryMs = Date.now() - started;
    expect(recovery.verify.ok).toBe(true);
    expect(recovery).toMatchObject({
      mode: 'standard',
      restoredEvents: before.length,
      replayedEvents: after.length,
    });
    expect(await count()).toEqual({ n: events.length, records: events.length });
    for (const [i, t] of probes.entries()) {
      expect(await sqlState(db.pool, t), `state at probe ${i}`).toEqual(stateBefore[i]);
    }
    const verified = await command('verify', '--dir', dir);
    expect(verified.ok).toBe(true);
    expect(verified.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([
        'relations',
        'configuration',
        'schema',
        'events',
        'snapshot pointer',
        'backup',
        ...(dialect === 'timescaledb' ? ['hypertable', 'continuous aggregate', 'aggregate links'] : []),
      ]),
    );
    console.log(
      `recovery drill: ${before.length} events before the backup, ${after.length} after, ` +
        `${recovery.restoredEvents} restored + ${recovery.replayedEvents} replayed from Kafka, ` +
        `recovery ${recoveryMs} ms (restore ${recovery.ms.restore}, replay ${recovery.ms.replay}, rebuild ${recovery.ms.rebuild}), ` +
        `dump ${backup.dumpBytes} bytes (${dialect})`,
    );
  });
});

describe('cold recovery, and backups checked against their own metadata', () => {
  let db: TestDatabase;
  let dir: string;
  const env = () => ({ ...process.env, DATABASE_URL: db.url, AUTH_MODE: 'none' });
  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const command = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'server/cli/recovery.ts', ...args], {
      cwd: root,
      env: env(),
      maxBuffer: 16 << 20,
    }).then(
      ({ stdout }) => ({ code: 0, out: JSON.parse(stdout), err: '' }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout ? JSON.parse(e.stdout) : null,
        err: e.stderr,
      }),
    );
  const range = async () =>
    (
      await db.pool.query(
        `select count(*)::int as n, min(event_timestamp) as lo, max(event_timestamp) as hi from msr.cdc_event`,
      )
    ).rows[0];

  it('restores exactly the events the backup was taken with, and refuses what does not fit', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'msr-cold-'));
    db = await createTestDatabase();
    const start = Date.now() - 3 * HOUR;
    const events = generateHistory(43, start, 2 * HOUR, 2500);
    await insertHistory(db.pool, events);
    await db.pool.query(REFRESH_AGGREGATE);
    const probes = [0.2, 0.6, 1].map((f) => Math.round(start + f * 2 * HOUR));
    const stateBefore = await Promise.all(probes.map((t) => sqlState(db.pool, t)));
    const rangeBefore = await range();

    const backup = await command('backup', '--dir', dir);
    expect(backup.code).toBe(0);
    expect(backup.out).toMatchObject({ events: events.length, dialect });
    expect(backup.out.dumpBytes).toBeGreaterThan(events.length * 50);

    // More rows after the backup: a cold recovery takes the database back to the backup.
    await insertHistory(db.pool, generateHistory(44, start + 2 * HOUR, HOUR, 200));
    const cold = await command('restore', '--dir', dir, '--cold');
    expect(cold.code, cold.err).toBe(0);
    expect(cold.out).toMatchObject({ mode: 'cold', restoredEvents: events.length, replayedEvents: 0 });
    expect(await range()).toEqual(rangeBefore);
    for (const [i, t] of probes.entries()) {
      expect(await sqlState(db.pool, t), `state at probe ${i}`).toEqual(stateBefore[i]);
    }
    if (dialect === 'timescaledb') {
      const { rows } = await db.pool.query(
        `select count(*)::int as n from timescaledb_information.chunks where hypertable_name = 'cdc_event'`,
      );
      expect(rows[0].n).toBeGreaterThan(0);
    }
    expect((await command('verify', '--dir', dir)).code).toBe(0);

    // A backup whose dump does not hold what its metadata says fails loudly, before and at restore.
    const metadataFile = path.join(dir, 'backup.json');
    const metadata = JSON.parse(await readFile(metadataFile, 'utf8'));
    await writeFile(metadataFile, JSON.stringify({ ...metadata, events: metadata.events + 1 }));
    const lying = await command('verify', '--dir', dir);
    expect(lying.code).toBe(1);
    expect(lying.out.checks.find((c: { name: string }) => c.name === 'backup')).toMatchObject({
      ok: false,
      detail: expect.stringContaining(`backup.json says ${events.length + 1}`),
    });
    const mismatch = await command('restore', '--dir', dir, '--cold');
    expect(mismatch.err).toContain('BACKUP_MISMATCH');

    // A backup of the other dialect is refused before anything is changed.
    const other =
      dialect === 'timescaledb'
        ? { ...metadata, dialect: 'postgres', timescaledbVersion: null }
        : { ...metadata, dialect: 'timescaledb', timescaledbVersion: '2.22.1' };
    await writeFile(metadataFile, JSON.stringify(other));
    const refused = await command('restore', '--dir', dir, '--cold');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('RESTORE_REFUSED');
    expect(await range()).toEqual(rangeBefore);
  });
});
