import { readFileSync } from 'node:fs';
import { Cron } from 'croner';
import { z } from 'zod';
import { redactSecrets } from './db/redact.js';
import { SSL_MODES, tlsProblems, unreadable, urlTls, withTls, type DatabaseTls } from './db/tls.js';

/**
 * Every setting the server reads from the environment, parsed once at start.
 * README.md documents each variable with its default; keep the two in step.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
    error: 'expected true or false',
  })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const int = (min: number, max: number) =>
  z.coerce
    .number({ error: 'expected a whole number' })
    .int({ error: 'expected a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

const cronExpression = z.string().refine(
  (expr) => {
    try {
      new Cron(expr, { paused: true }).stop();
      return true;
    } catch {
      return false;
    }
  },
  { error: 'is not a valid cron expression' },
);

const timestamp = z.string().transform((v, ctx) => {
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: 'expected an ISO 8601 time or epoch milliseconds' });
    return z.NEVER;
  }
  return ms;
});

const postgresUrl = z.string().refine((v) => /^postgres(ql)?:\/\//.test(v), {
  error: 'expected a postgres:// or postgresql:// URL',
});

const regex = z.string().transform((v, ctx) => {
  try {
    return new RegExp(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `is not a valid regular expression: ${(err as Error).message}` });
    return z.NEVER;
  }
});

const envSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_SSL_MODE: z.enum(SSL_MODES).optional(),
  DATABASE_SSL_CA_FILE: z.string().min(1).optional(),
  DATABASE_SSL_CERT_FILE: z.string().min(1).optional(),
  DATABASE_SSL_KEY_FILE: z.string().min(1).optional(),
  DATABASE_REPLICA_URLS: list.optional(),
  REPLICA_MAX_LAG_SECONDS: int(1, 86_400).default(30),
  DB_POOL_SIZE: int(1, 200).default(10),
  MSR_DATA_DIR: z.string().min(1).default('.msr'),
  EMBEDDED_PG_PORT: int(0, 65535).default(0),
  MAX_PLAYBACK_RANGE: int(1, 3650).default(7),
  MAX_ACTIVE_SESSIONS: int(1, 100000).default(5),
  MAX_SESSIONS_PER_USER: int(1, 100000).optional(),
  MAX_SOCKETS: int(1, 1_000_000).default(10_000),
  MAX_SOCKETS_PER_SESSION: int(1, 10_000).default(10),
  UNBOUND_SOCKET_BUFFER_BYTES: int(1024, 268_435_456).default(1_048_576),
  MAX_STATE_REQUESTS: int(1, 1000).default(4),
  EARLIEST_VALID_TIMESTAMP: timestamp.optional(),
  DATA_RETENTION_CRON_EXPRESSION: cronExpression.default('0 3 * * *'),
  CLEANUP_SERVICE_ENABLED: bool.default(true),
  AGGREGATE_REFRESH_SECONDS: int(0, 86_400).default(60),
  LIVE_DELAY_MS: int(0, 60_000).default(1_000),
  LIVE_EDGE_FOLLOWS_CAPTURE: bool.optional(),
  DEMO: bool.optional(),
  DEMO_LIVE_EVENTS_PER_SECOND: int(0, 100000).default(50),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KAFKA_BROKERS: list.optional(),
  KAFKA_CLIENT_ID: z.string().min(1).default('msr'),
  KAFKA_GROUP_ID: z.string().min(1).default('msr-ingest'),
  KAFKA_SESSION_TIMEOUT_MS: int(6_000, 300_000).default(30_000),
  // 4 MiB: a quarter of the transactions, fetches and offset commits of 1 MiB for the same records;
  // a median 10 % more events/s on 2 cores (17 paired runs), peak RSS 185-193 MB against 152-155.
  KAFKA_MAX_BATCH_BYTES: int(16_384, 67_108_864).default(4_194_304),
  KAFKA_CONCURRENT_PARTITIONS: int(1, 64).default(3),
  KAFKA_DECODE_THREADS: int(0, 16).default(1),
  INGEST_LAG_THRESHOLD: int(0, 1_000_000_000).default(100_000),
  KAFKA_TOPICS: list.optional(),
  KAFKA_SSL: bool.default(false),
  KAFKA_SSL_CA_FILE: z.string().min(1).optional(),
  KAFKA_SSL_CERT_FILE: z.string().min(1).optional(),
  KAFKA_SSL_KEY_FILE: z.string().min(1).optional(),
  KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  // Debezium names topics <topic.prefix>.<schema>.<table>; internal topics start with '__'.
  KAFKA_TOPIC_PATTERN: regex.default(/^(?!__)[^.]+\.[^.]+\.[^.]+$/),
  SIGNAL_TOPIC: z.string().min(1).default('msr.debezium_adhoc_snapshots'),
  CAPTURE_SOURCE_URL: postgresUrl.optional(),
  CAPTURE_SOURCE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, { error: 'letters, digits, _ and - only (it names topics and the slot)' })
    .optional(),
  CAPTURE_PUBLICATION: z.string().min(1).default('msr'),
  CAPTURE_SLOT: z
    .string()
    .regex(/^[a-z0-9_]{1,63}$/, { error: 'lower-case letters, digits and _ only, at most 63' })
    .optional(),
  CAPTURE_TABLES: list.optional(),
  CAPTURE_TO: z.enum(['database', 'kafka']).default('database'),
  CAPTURE_HEARTBEAT_SECONDS: int(1, 3600).default(10),
  CAPTURE_TAKEOVER_SECONDS: int(1, 600).default(10),
  CAPTURE_MAX_RETAINED_WAL_MB: int(1, 10_000_000).default(1024),
  AUTH_MODE: z.enum(['jwt', 'none']).optional(),
  AUTH_JWKS_URL: z.url({ error: 'expected the JWKS URL of the identity service' }).optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: list.optional(),
  AUTH_CLOCK_TOLERANCE_S: int(0, 600).default(30),
  AUTH_JWKS_COOLDOWN_MS: int(0, 3_600_000).default(30_000),
  AUTH_ROLES_CLAIM: z.string().min(1).default('realm_access.roles'),
  AUTH_ADMIN_ROLE: z.string().min(1).default('msr-admin'),
});

/** Variables that hold secrets: each may be given as a file (`NAME_FILE`) and is never echoed. */
export const SECRET_VARIABLES = [
  'DATABASE_URL',
  'DATABASE_REPLICA_URLS',
  'CAPTURE_SOURCE_URL',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
];

/** TLS to Kafka: certificates as PEM text, read at start; absent: plaintext. */
export interface KafkaTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface KafkaSasl {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: string;
}

/** How every Kafka client MSR makes reaches the cluster. */
export interface KafkaConnection {
  readonly brokers: readonly string[] | undefined;
  readonly clientId: string;
  readonly tls: KafkaTls | undefined;
  readonly sasl: KafkaSasl | undefined;
}

export interface AuthConfig {
  /** 'none': everyone is an administrator; set explicitly (the embedded demo assumes it). */
  readonly mode: 'jwt' | 'none';
  readonly jwksUrl: string | undefined;
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceS: number;
  /** After a token names an unknown key, the JWKS is fetched again at most this often. */
  readonly jwksCooldownMs: number;
  /** Dotted path of the roles array in the token (Keycloak: realm_access.roles). */
  readonly rolesClaim: string;
  readonly adminRole: string;
}

/** How a capture watches its slot and hands it over; the same for every source. */
export interface CaptureTiming {
  readonly heartbeatMs: number;
  /** A standby process takes the slot over within this long after its holder is gone. */
  readonly takeoverMs: number;
  /** /readyz fails when the slot holds more WAL than this. */
  readonly maxRetainedWalBytes: number;
}

export interface CaptureConfig extends CaptureTiming {
  /** The source database, as a user with REPLICATION. */
  readonly sourceUrl: string;
  /** Stored as each event's source (Debezium's topic prefix); default: the source database's name. */
  readonly sourceName: string;
  readonly publication: string;
  readonly slot: string;
  /** Tables for the publication when MSR creates it (schema.table). */
  readonly tables: readonly string[] | undefined;
  /**
   * database: changes go straight into msr.cdc_event; kafka: to Debezium-format topics, which the
   * ingest then stores (Kafka stays the recovery log).
   */
  readonly to: 'database' | 'kafka';
}

export interface ReplicaConfig {
  readonly urls: readonly string[];
  /** A replica further behind the primary than this is out of rotation until it catches up. */
  readonly maxLagMs: number;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  /** Absent: the server runs its own embedded PostgreSQL in `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dbPoolSize: number;
  /** Hot standbys that serve keyframes and window reads; the DATABASE_SSL_* settings apply to each. */
  readonly replicas: ReplicaConfig;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly maxPlaybackRangeDays: number;
  readonly maxActiveSessions: number;
  /** Active sessions one user (token subject) may hold across servers; administrators are exempt. */
  readonly maxSessionsPerUser: number;
  /** WebSocket connections one server keeps at once; more are closed with 1013 SOCKET_LIMIT. */
  readonly maxSockets: number;
  /** Sockets attached to one session; one more gets SOCKET_LIMIT. */
  readonly maxSocketsPerSession: number;
  /** Unread bytes a socket without a session may hold (error replies) before it is closed with 4008. */
  readonly unboundSocketBufferBytes: number;
  /** /api/v1/state calls served at once per server; more get 429 BUSY. */
  readonly maxStateRequests: number;
  readonly earliestValidTimestamp: number | undefined;
  readonly retentionCron: string;
  readonly cleanupEnabled: boolean;
  /** entity_last_states is refreshed this often (0: never, beside the daily maintenance). */
  readonly aggregateRefreshMs: number;
  /**
   * How far live sessions trail the wall clock (ms): rows committed but not yet stored within it
   * are played in order; later ones come as corrections.
   */
  readonly liveDelayMs: number;
  /**
   * Live sessions play up to what this process's capture has stored (into the database) when
   * that is later than the trail. Off by default in a process that also ingests from Kafka, whose
   * rows store about a second after their commit and would all come as corrections.
   */
  readonly liveEdgeFollowsCapture: boolean;
  readonly demo: boolean;
  readonly demoLiveEventsPerSecond: number;
  readonly logLevel: string;
  readonly kafka: KafkaConnection & {
    readonly groupId: string;
    readonly sessionTimeoutMs: number;
    /** Most bytes fetched per partition at once: the size of one stored batch. */
    readonly maxBatchBytes: number;
    /** Partitions whose batches are decoded and stored at the same time (one connection each). */
    readonly concurrentPartitions: number;
    /** Threads that decode fetched records beside the main thread (0: decode on it). */
    readonly decodeThreads: number;
    /** /readyz fails while more records than this wait in the ingest's topics. */
    readonly lagThreshold: number;
    readonly topics: readonly string[] | undefined;
    readonly topicPattern: RegExp;
    readonly signalTopic: string;
  };
  readonly auth: AuthConfig;
  /** Built-in capture from a source PostgreSQL's logical replication (absent: off). */
  readonly capture: CaptureConfig | undefined;
  /** Every capture's timing (the configured one's, and the live demo's). */
  readonly captureTiming: CaptureTiming;
}

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment; throws one ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnvironment(env);
  const problems = [...checkAuth(e), ...checkKafkaSecurity(e)];
  if (e.CAPTURE_SOURCE_URL)
    problems.push(...urlTls(e.CAPTURE_SOURCE_URL).problems.map((p) => `CAPTURE_SOURCE_URL: ${p}`));
  if (e.CAPTURE_TO === 'kafka' && !e.KAFKA_BROKERS?.length)
    problems.push('CAPTURE_TO: kafka needs KAFKA_BROKERS (the ingest then stores what the capture sends)');
  const { databaseUrl, replicaUrls } = databaseUrls(e, problems);
  // A TLS file problem is found once per URL it applies to; say it once.
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return deepFreeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl,
    dbPoolSize: e.DB_POOL_SIZE,
    replicas: { urls: replicaUrls, maxLagMs: e.REPLICA_MAX_LAG_SECONDS * 1000 },
    dataDir: e.MSR_DATA_DIR,
    embeddedPgPort: e.EMBEDDED_PG_PORT,
    maxPlaybackRangeDays: e.MAX_PLAYBACK_RANGE,
    maxActiveSessions: e.MAX_ACTIVE_SESSIONS,
    // By default one user may take at most half of the slots (at least one).
    maxSessionsPerUser: e.MAX_SESSIONS_PER_USER ?? Math.max(1, Math.ceil(e.MAX_ACTIVE_SESSIONS / 2)),
    maxSockets: e.MAX_SOCKETS,
    maxSocketsPerSession: e.MAX_SOCKETS_PER_SESSION,
    unboundSocketBufferBytes: e.UNBOUND_SOCKET_BUFFER_BYTES,
    maxStateRequests: e.MAX_STATE_REQUESTS,
    earliestValidTimestamp: e.EARLIEST_VALID_TIMESTAMP,
    retentionCron: e.DATA_RETENTION_CRON_EXPRESSION,
    cleanupEnabled: e.CLEANUP_SERVICE_ENABLED,
    aggregateRefreshMs: e.AGGREGATE_REFRESH_SECONDS * 1000,
    liveDelayMs: e.LIVE_DELAY_MS,
    liveEdgeFollowsCapture: e.LIVE_EDGE_FOLLOWS_CAPTURE ?? !e.KAFKA_BROKERS?.length,
    demo: e.DEMO ?? e.DATABASE_URL === undefined,
    demoLiveEventsPerSecond: e.DEMO_LIVE_EVENTS_PER_SECOND,
    logLevel: e.LOG_LEVEL,
    kafka: kafkaConfig(e),
    capture: captureConfig(e),
    captureTiming: captureTiming(e),
    auth: {
      // Without DATABASE_URL the server is the local demo on its embedded database.
      mode: e.AUTH_MODE ?? 'none',
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_ISSUER,
      audience: e.AUTH_AUDIENCE,
      clockToleranceS: e.AUTH_CLOCK_TOLERANCE_S,
      jwksCooldownMs: e.AUTH_JWKS_COOLDOWN_MS,
      rolesClaim: e.AUTH_ROLES_CLAIM,
      adminRole: e.AUTH_ADMIN_ROLE,
    },
  });
}

/** The environment with empty values dropped and secret files read, parsed; one ConfigError naming every bad variable. */
function parseEnvironment(env: NodeJS.ProcessEnv): z.infer<typeof envSchema> {
  // Empty strings mean "unset", as they do in most shells and compose files.
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const { values: present, problems: fileProblems } = readSecretFiles(given);
  const parsed = envSchema.safeParse(present);
  if (parsed.success && fileProblems.length === 0) return parsed.data;
  const problems = (parsed.error?.issues ?? []).map((issue) => {
    const name = String(issue.path[0] ?? '(environment)');
    const got =
      name in present && !name.startsWith('KAFKA_SASL_')
        ? ` (got ${JSON.stringify(redactSecrets(present[name]!))})`
        : '';
    return `${name}: ${issue.message}${got}`;
  });
  throw new ConfigError([...fileProblems, ...problems]);
}

/** DATABASE_URL and each replica's URL with the DATABASE_SSL_* settings written in. */
function databaseUrls(e: z.infer<typeof envSchema>, problems: string[]) {
  const databaseUrl =
    e.DATABASE_URL === undefined ? undefined : databaseTls(e, e.DATABASE_URL, 'DATABASE_URL', problems);
  const replicaUrls = (e.DATABASE_REPLICA_URLS ?? []).map((url, i) => {
    const name = `DATABASE_REPLICA_URLS (replica ${i + 1})`;
    if (!/^postgres(ql)?:\/\//.test(url))
      problems.push(`${name}: expected a postgres:// or postgresql:// URL`);
    return databaseTls(e, url, name, problems);
  });
  if (replicaUrls.length > 0 && e.DATABASE_URL === undefined)
    problems.push('DATABASE_REPLICA_URLS: needs DATABASE_URL (the primary the replicas follow)');
  return { databaseUrl, replicaUrls };
}

function kafkaConfig(e: z.infer<typeof envSchema>): Config['kafka'] {
  return {
    brokers: e.KAFKA_BROKERS,
    clientId: e.KAFKA_CLIENT_ID,
    tls: e.KAFKA_SSL
      ? {
          ...(e.KAFKA_SSL_CA_FILE ? { ca: readFileSync(e.KAFKA_SSL_CA_FILE, 'utf8') } : {}),
          ...(e.KAFKA_SSL_CERT_FILE ? { cert: readFileSync(e.KAFKA_SSL_CERT_FILE, 'utf8') } : {}),
          ...(e.KAFKA_SSL_KEY_FILE ? { key: readFileSync(e.KAFKA_SSL_KEY_FILE, 'utf8') } : {}),
        }
      : undefined,
    sasl: e.KAFKA_SASL_MECHANISM
      ? {
          mechanism: e.KAFKA_SASL_MECHANISM,
          username: e.KAFKA_SASL_USERNAME!,
          password: e.KAFKA_SASL_PASSWORD!,
        }
      : undefined,
    groupId: e.KAFKA_GROUP_ID,
    sessionTimeoutMs: e.KAFKA_SESSION_TIMEOUT_MS,
    maxBatchBytes: e.KAFKA_MAX_BATCH_BYTES,
    concurrentPartitions: e.KAFKA_CONCURRENT_PARTITIONS,
    decodeThreads: e.KAFKA_DECODE_THREADS,
    lagThreshold: e.INGEST_LAG_THRESHOLD,
    topics: e.KAFKA_TOPICS,
    topicPattern: e.KAFKA_TOPIC_PATTERN,
    signalTopic: e.SIGNAL_TOPIC,
  };
}

/**
 * `NAME_FILE` gives NAME the file's content (one trailing newline dropped), so secrets can come
 * from mounted files; both at once, or a file that cannot be read, is a problem.
 */
function readSecretFiles(env: Record<string, string | undefined>): {
  values: Record<string, string | undefined>;
  problems: string[];
} {
  const values = { ...env };
  const problems: string[] = [];
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined) continue;
    delete values[`${name}_FILE`];
    if (env[name] !== undefined) {
      problems.push(`${name}_FILE: give ${name} or ${name}_FILE, not both`);
      continue;
    }
    try {
      values[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(
        `${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
  }
  return { values, problems };
}

/** Kafka's TLS and SASL settings must be complete, and their files readable. */
function checkKafkaSecurity(e: z.infer<typeof envSchema>): string[] {
  const problems: string[] = [];
  const files = {
    KAFKA_SSL_CA_FILE: e.KAFKA_SSL_CA_FILE,
    KAFKA_SSL_CERT_FILE: e.KAFKA_SSL_CERT_FILE,
    KAFKA_SSL_KEY_FILE: e.KAFKA_SSL_KEY_FILE,
  };
  for (const [name, file] of Object.entries(files)) {
    if (file === undefined) continue;
    const problem = e.KAFKA_SSL ? unreadable(file) : 'given without KAFKA_SSL=true';
    if (problem) problems.push(`${name}: ${problem}`);
  }
  if ((e.KAFKA_SSL_CERT_FILE === undefined) !== (e.KAFKA_SSL_KEY_FILE === undefined)) {
    problems.push(
      'KAFKA_SSL_CERT_FILE: a client certificate needs KAFKA_SSL_KEY_FILE, and a key its certificate',
    );
  }
  if (e.KAFKA_SASL_MECHANISM) {
    if (!e.KAFKA_SASL_USERNAME) problems.push('KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM');
    if (!e.KAFKA_SASL_PASSWORD) problems.push('KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM');
  } else if (e.KAFKA_SASL_USERNAME || e.KAFKA_SASL_PASSWORD) {
    problems.push(
      'KAFKA_SASL_MECHANISM: required with KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (plain, scram-sha-256, scram-sha-512)',
    );
  }
  return problems;
}

/**
 * DATABASE_URL with the DATABASE_SSL_* settings written into it in libpq's form, so that every
 * connection made from the URL (pools, pg_dump, the restore) uses them; a URL that already says
 * otherwise is a problem rather than a silent choice.
 */
function databaseTls(e: z.infer<typeof envSchema>, url: string, name: string, problems: string[]): string {
  const inUrl = urlTls(url);
  problems.push(...inUrl.problems.map((p) => `${name}: ${p}`));
  const files = {
    caFile: e.DATABASE_SSL_CA_FILE,
    certFile: e.DATABASE_SSL_CERT_FILE,
    keyFile: e.DATABASE_SSL_KEY_FILE,
  };
  const anyFile = Object.values(files).some((f) => f !== undefined);
  if (e.DATABASE_SSL_MODE === undefined && !anyFile) return url;
  if (inUrl.tls) {
    problems.push(`DATABASE_SSL_MODE: TLS is set in ${name} (sslmode and friends) too; give it in one place`);
    return url;
  }
  const tls: DatabaseTls = {
    mode: e.DATABASE_SSL_MODE ?? 'verify-full',
    ...Object.fromEntries(Object.entries(files).filter(([, f]) => f !== undefined)),
  };
  problems.push(...tlsProblems(tls).map((p) => `DATABASE_SSL_MODE: ${p}`));
  return withTls(url, tls);
}

function captureConfig(e: z.infer<typeof envSchema>): CaptureConfig | undefined {
  if (!e.CAPTURE_SOURCE_URL) return undefined;
  const sourceName =
    e.CAPTURE_SOURCE_NAME ?? databaseName(e.CAPTURE_SOURCE_URL).replace(/[^A-Za-z0-9_-]/g, '_');
  return {
    sourceUrl: e.CAPTURE_SOURCE_URL,
    sourceName,
    publication: e.CAPTURE_PUBLICATION,
    slot: e.CAPTURE_SLOT ?? captureSlotName(sourceName),
    tables: e.CAPTURE_TABLES,
    to: e.CAPTURE_TO,
    ...captureTiming(e),
  };
}

function captureTiming(e: z.infer<typeof envSchema>): CaptureTiming {
  return {
    heartbeatMs: e.CAPTURE_HEARTBEAT_SECONDS * 1000,
    takeoverMs: e.CAPTURE_TAKEOVER_SECONDS * 1000,
    maxRetainedWalBytes: e.CAPTURE_MAX_RETAINED_WAL_MB * 1024 * 1024,
  };
}

/** The database a postgres:// URL names. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1)) || 'postgres';
}

/** A replication slot name for a source: msr_<name>, as PostgreSQL allows one (a-z, 0-9, _, 63 long). */
export function captureSlotName(name: string): string {
  return `msr_${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

/** Auth must be chosen on a real database, and jwt needs its identity service. */
function checkAuth(e: z.infer<typeof envSchema>): string[] {
  const problems: string[] = [];
  if (e.AUTH_MODE === undefined && e.DATABASE_URL !== undefined) {
    problems.push('AUTH_MODE: required with DATABASE_URL: jwt, or none to run without authentication');
  }
  if (e.AUTH_MODE === 'jwt') {
    if (!e.AUTH_JWKS_URL) problems.push('AUTH_JWKS_URL: required when AUTH_MODE=jwt');
    if (!e.AUTH_ISSUER) problems.push('AUTH_ISSUER: required when AUTH_MODE=jwt');
    if (!e.AUTH_AUDIENCE?.length) problems.push('AUTH_AUDIENCE: required when AUTH_MODE=jwt');
  }
  return problems;
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner && typeof inner === 'object' && !(inner instanceof RegExp)) deepFreeze(inner);
  }
  return Object.freeze(value);
}
