import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';

describe('loadConfig', () => {
  it('gives the documented defaults and the embedded default with demo data', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      databaseUrl: undefined,
      dataDir: '.msr',
      maxPlaybackRangeDays: 7,
      maxActiveSessions: 5,
      earliestValidTimestamp: undefined,
      retentionCron: '0 3 * * *',
      cleanupEnabled: true,
      demo: true,
      logLevel: 'info',
      liveDelayMs: 1000,
      liveEdgeFollowsCapture: true,
    });
    expect(config.kafka).toMatchObject({
      groupId: 'msr-ingest',
      signalTopic: 'msr.debezium_adhoc_snapshots',
    });
  });

  it('lets the live edge follow the capture unless told otherwise', () => {
    expect(loadConfig({ LIVE_EDGE_FOLLOWS_CAPTURE: 'false' }).liveEdgeFollowsCapture).toBe(false);
    expect(
      loadConfig({ KAFKA_BROKERS: 'a:9092', LIVE_EDGE_FOLLOWS_CAPTURE: 'true' }).liveEdgeFollowsCapture,
    ).toBe(true);
  });

  it('turns the built-in capture on with a source URL, naming source and slot after its database', () => {
    expect(loadConfig({}).capture).toBeUndefined();
    const config = loadConfig({ CAPTURE_SOURCE_URL: 'postgres://cap:pw@source-db:5432/Fleet-Ops' });
    expect(config.capture).toEqual({
      sourceUrl: 'postgres://cap:pw@source-db:5432/Fleet-Ops',
      sourceName: 'Fleet-Ops',
      publication: 'msr',
      slot: 'msr_fleet_ops',
      tables: undefined,
      to: 'database',
      heartbeatMs: 10_000,
      takeoverMs: 10_000,
      maxRetainedWalBytes: 1024 * 1024 * 1024,
    });
    expect(config.captureTiming).toEqual({
      heartbeatMs: 10_000,
      takeoverMs: 10_000,
      maxRetainedWalBytes: 1024 ** 3,
    });
    const named = loadConfig({
      CAPTURE_SOURCE_URL: 'postgres://cap@source-db/gis',
      CAPTURE_SOURCE_NAME: 'gis_server',
      CAPTURE_TABLES: 'gis.bookmark, gis.geo_entity',
      CAPTURE_TAKEOVER_SECONDS: '3',
    }).capture;
    expect(named).toMatchObject({ sourceName: 'gis_server', slot: 'msr_gis_server', takeoverMs: 3_000 });
    expect(named!.tables).toEqual(['gis.bookmark', 'gis.geo_entity']);
    expect(() => loadConfig({ CAPTURE_SOURCE_URL: 'postgres://s/db', CAPTURE_SLOT: 'Bad-Slot' })).toThrow(
      /CAPTURE_SLOT: lower-case letters, digits and _ only/,
    );
    expect(() => loadConfig({ CAPTURE_SOURCE_URL: 'mysql://s/db' })).toThrow(/CAPTURE_SOURCE_URL/);
    expect(() => loadConfig({ CAPTURE_SOURCE_URL: 'postgres://s/db', CAPTURE_TO: 'kafka' })).toThrow(
      /CAPTURE_TO: kafka needs KAFKA_BROKERS/,
    );
    expect(() => loadConfig({ CAPTURE_SOURCE_URL: 'postgres://s/db', CAPTURE_TO: 'files' })).toThrow(
      /CAPTURE_TO/,
    );
    expect(
      loadConfig({ CAPTURE_SOURCE_URL: 'postgres://s/db', CAPTURE_TO: 'kafka', KAFKA_BROKERS: 'k:9092' })
        .capture!.to,
    ).toBe('kafka');
  });

  it('turns demo data off by default for an external database, on when asked', () => {
    expect(loadConfig({ AUTH_MODE: 'none', DATABASE_URL: 'postgres://u:p@db:5432/msr' }).demo).toBe(false);
    expect(
      loadConfig({ AUTH_MODE: 'none', DATABASE_URL: 'postgres://u:p@db:5432/msr', DEMO: 'true' }).demo,
    ).toBe(true);
    expect(loadConfig({ DEMO: 'false' }).demo).toBe(false);
  });

  it('parses numbers, lists, times and booleans', () => {
    const config = loadConfig({
      PORT: '0',
      MAX_PLAYBACK_RANGE: '30',
      EARLIEST_VALID_TIMESTAMP: '2026-01-01T00:00:00Z',
      CLEANUP_SERVICE_ENABLED: 'no',
      KAFKA_BROKERS: 'a:9092, b:9092',
      KAFKA_TOPIC_PATTERN: '^gis\\.',
      LIVE_DELAY_MS: '250',
    });
    expect(config.port).toBe(0);
    expect(config.liveDelayMs).toBe(250);
    expect(config.maxPlaybackRangeDays).toBe(30);
    expect(config.earliestValidTimestamp).toBe(Date.UTC(2026, 0, 1));
    expect(config.cleanupEnabled).toBe(false);
    expect(config.kafka.brokers).toEqual(['a:9092', 'b:9092']);
    // Kafka's rows store about a second after their commit: the live edge keeps its trail.
    expect(config.liveEdgeFollowsCapture).toBe(false);
    expect(config.kafka.topicPattern!.test('gis.gis.bookmark')).toBe(true);
    expect(loadConfig({ EARLIEST_VALID_TIMESTAMP: '1767225600000' }).earliestValidTimestamp).toBe(
      1767225600000,
    );
  });

  it('never echoes a password in a configuration error, even of a malformed URL', () => {
    for (const url of ['mysql://msr:s3cret@db:5432/msr', 'postgres//msr:s3cret@db:5432/msr x']) {
      const error = (() => {
        try {
          loadConfig({ DATABASE_URL: url, AUTH_MODE: 'none' });
        } catch (err) {
          return err as ConfigError;
        }
        throw new Error('accepted');
      })();
      expect(error.message).toContain('DATABASE_URL');
      expect(error.message).not.toContain('s3cret');
      expect(error.message).toContain('msr:***@db');
    }
  });

  it('derives the per-user share from the session cap, and takes the socket limits', () => {
    expect(loadConfig({}).maxSessionsPerUser).toBe(3);
    expect(loadConfig({ MAX_ACTIVE_SESSIONS: '1' }).maxSessionsPerUser).toBe(1);
    const config = loadConfig({
      MAX_SESSIONS_PER_USER: '2',
      MAX_SOCKETS: '50',
      MAX_SOCKETS_PER_SESSION: '3',
    });
    expect([config.maxSessionsPerUser, config.maxSockets, config.maxSocketsPerSession]).toEqual([2, 50, 3]);
    expect(() => loadConfig({ MAX_SOCKETS: '0' })).toThrow(/MAX_SOCKETS: must be at least 1/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' }).port).toBe(8080);
  });

  it('names every bad variable and why in one error', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        MAX_ACTIVE_SESSIONS: '0',
        DATA_RETENTION_CRON_EXPRESSION: 'every night',
        DATABASE_URL: 'mysql://db/msr',
        DEMO: 'maybe',
        EARLIEST_VALID_TIMESTAMP: 'yesterday',
        LOG_LEVEL: 'loud',
        LIVE_DELAY_MS: '90000',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'DATABASE_URL',
      'DATA_RETENTION_CRON_EXPRESSION',
      'DEMO',
      'EARLIEST_VALID_TIMESTAMP',
      'LIVE_DELAY_MS',
      'LOG_LEVEL',
      'MAX_ACTIVE_SESSIONS',
      'PORT',
    ]);
    expect(problems.find((p) => p.startsWith('PORT'))).toBe('PORT: expected a whole number (got "eighty")');
    expect(problems.find((p) => p.startsWith('MAX_ACTIVE_SESSIONS'))).toMatch(/at least 1/);
    expect(problems.find((p) => p.startsWith('DATA_RETENTION'))).toMatch(/not a valid cron expression/);
    expect((error as ConfigError).code).toBe('BAD_CONFIG');
  });

  it('asks for an explicit AUTH_MODE on a real database, and for the identity service with jwt', () => {
    expect(loadConfig({}).auth.mode).toBe('none');
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as ConfigError).problems.map((p) => p.split(':')[0]);
      }
    };
    expect(problems({ DATABASE_URL: 'postgres://db/msr' })).toEqual(['AUTH_MODE']);
    expect(problems({ DATABASE_URL: 'postgres://db/msr', AUTH_MODE: 'jwt' })).toEqual([
      'AUTH_JWKS_URL',
      'AUTH_ISSUER',
      'AUTH_AUDIENCE',
    ]);
    expect(problems({ AUTH_MODE: 'maybe' })).toEqual(['AUTH_MODE']);
    const jwt = loadConfig({
      DATABASE_URL: 'postgres://db/msr',
      AUTH_MODE: 'jwt',
      AUTH_JWKS_URL: 'https://id.example/realms/ops/protocol/openid-connect/certs',
      AUTH_ISSUER: 'https://id.example/realms/ops',
      AUTH_AUDIENCE: 'msr, msr-viewer',
    });
    expect(jwt.auth).toMatchObject({
      mode: 'jwt',
      audience: ['msr', 'msr-viewer'],
      clockToleranceS: 30,
      rolesClaim: 'realm_access.roles',
      adminRole: 'msr-admin',
    });
  });

  it('is frozen', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.kafka)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow();
  });
});
