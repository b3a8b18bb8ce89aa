import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { freePort } from '../../server/db/embedded.js';
import { issueCertificate, makeAuthority } from './certificates.js';

/**
 * Real Apache Kafka (one KRaft broker-controller) and a Kafka Connect worker with the Debezium
 * PostgreSQL connector, run as Java processes from the jars scripts/ensure-kafka.sh fetched from
 * Maven Central. Tests and benchmarks start one per run; stop() ends exactly these processes.
 */
export interface KafkaCluster {
  readonly brokers: string[];
  /** The same broker's SASL_SSL listener, when started with `secure`. */
  readonly secure?: SecureListener;
  readonly connectUrl: string;
  /** The broker's process (benchmarks read its CPU time). */
  readonly brokerPid?: number;
  /** The Kafka Connect worker's process (benchmarks read its memory). */
  readonly connectPid?: number;
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * A SASL_SSL listener: a certificate for 127.0.0.1 and localhost signed by a CA made for the run,
 * a SCRAM-SHA-512 and a SCRAM-SHA-256 user made with Kafka's storage tool, and a PLAIN user.
 */
export interface SecureListener {
  readonly brokers: string[];
  readonly caFile: string;
  /** A CA that signed nothing of this broker's: clients trusting only it must refuse the broker. */
  readonly otherCaFile: string;
  readonly users: Record<'scram-sha-512' | 'scram-sha-256' | 'plain', { username: string; password: string }>;
}

const ROOT = new URL('../../', import.meta.url);
const JVM = ['-Xmx512m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true'];

export async function installKafka(): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [new URL('scripts/ensure-kafka.sh', ROOT).pathname], {
    maxBuffer: 1 << 20,
  });
  return stdout.trim().split('\n').at(-1)!;
}

export async function startKafkaCluster(
  dir: string,
  options: { connect?: boolean; secure?: boolean } = {},
): Promise<KafkaCluster> {
  const home = await installKafka();
  const classPath = path.join(home, 'libs', '*');
  await mkdir(dir, { recursive: true });
  const [port, controllerPort, connectPort] = [await freePort(), await freePort(), await freePort()];
  const log4j = path.join(dir, 'log4j.properties');
  await writeFile(
    log4j,
    [
      'log4j.rootLogger=WARN, stdout',
      'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
      'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
      '',
    ].join('\n'),
  );
  const java = (main: string, args: string[], logName: string): ChildProcess => {
    const child = spawn(
      'java',
      [...JVM, `-Dlog4j.configuration=file:${log4j}`, '-cp', classPath, main, ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const out = createWriteStream(path.join(dir, logName));
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    return child;
  };

  const secure = options.secure ? await secureListener(dir, await freePort()) : undefined;
  const serverProps = path.join(dir, 'server.properties');
  const plaintext = `PLAINTEXT://127.0.0.1:${port}`;
  const saslSsl = secure ? [`SASL_SSL://${secure.listener.brokers[0]}`] : [];
  await writeFile(
    serverProps,
    properties({
      'process.roles': 'broker,controller',
      'node.id': '1',
      'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
      listeners: [plaintext, `CONTROLLER://127.0.0.1:${controllerPort}`, ...saslSsl].join(','),
      'advertised.listeners': [plaintext, ...saslSsl].join(','),
      'controller.listener.names': 'CONTROLLER',
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
      ...secure?.properties,
      'inter.broker.listener.name': 'PLAINTEXT',
      'log.dirs': path.join(dir, 'data'),
      'offsets.topic.replication.factor': '1',
      'transaction.state.log.replication.factor': '1',
      'transaction.state.log.min.isr': '1',
      'group.initial.rebalance.delay.ms': '0',
      'num.partitions': '1',
      'auto.create.topics.enable': 'true',
    }),
  );
  // In --cluster-id=<id> form: a base64url id may start with '-', which a separate argument cannot.
  const clusterId = randomBytes(16).toString('base64url');
  await exited(
    java(
      'kafka.tools.StorageTool',
      ['format', `--cluster-id=${clusterId}`, '-c', serverProps, ...(secure?.formatArgs ?? [])],
      'format.log',
    ),
  );

  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.reverse().map(terminate));
  };
  try {
    children.push(java('kafka.Kafka', [serverProps], 'broker.log'));
    const brokers = [`127.0.0.1:${port}`];
    await waitFor('Kafka broker', children[0]!, () => brokerAnswers(brokers));

    const listener = secure ? { secure: secure.listener } : {};
    const brokerPid = children[0]!.pid;
    if (options.connect === false) return { brokers, ...listener, brokerPid, connectUrl: '', dir, stop };

    const workerProps = path.join(dir, 'connect.properties');
    await writeFile(
      workerProps,
      properties({
        'bootstrap.servers': brokers.join(','),
        'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
        'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
        'key.converter.schemas.enable': 'true',
        'value.converter.schemas.enable': 'true',
        'offset.storage.file.filename': path.join(dir, 'connect.offsets'),
        'offset.flush.interval.ms': '1000',
        'plugin.path': path.join(home, 'plugins'),
        'plugin.discovery': 'hybrid_warn',
        listeners: `http://127.0.0.1:${connectPort}`,
      }),
    );
    children.push(java('org.apache.kafka.connect.cli.ConnectStandalone', [workerProps], 'connect.log'));
    const connectUrl = `http://127.0.0.1:${connectPort}`;
    await waitFor('Kafka Connect', children[1]!, async () => {
      const res = await fetch(`${connectUrl}/connector-plugins`).catch(() => undefined);
      return !!res?.ok && (await res.text()).includes('PostgresConnector');
    });
    return { brokers, ...listener, brokerPid, connectUrl, connectPid: children[1]!.pid, dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function secureListener(
  dir: string,
  port: number,
): Promise<{ listener: SecureListener; properties: Record<string, string>; formatArgs: string[] }> {
  const tls = path.join(dir, 'tls');
  const ca = await makeAuthority(tls, 'kafka-test-ca');
  const other = await makeAuthority(tls, 'other-ca');
  const broker = await issueCertificate(ca, tls, 'broker', ['IP:127.0.0.1', 'DNS:localhost']);
  const secret = () => randomBytes(12).toString('base64url');
  const users: SecureListener['users'] = {
    'scram-sha-512': { username: 'msr-scram512', password: secret() },
    'scram-sha-256': { username: 'msr-scram256', password: secret() },
    plain: { username: 'msr-plain', password: secret() },
  };
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  const { username, password } = users.plain;
  return {
    listener: { brokers: [`127.0.0.1:${port}`], caFile: ca.certFile, otherCaFile: other.certFile, users },
    properties: {
      'sasl.enabled.mechanisms': 'SCRAM-SHA-512,SCRAM-SHA-256,PLAIN',
      'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config': scram,
      'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config': scram,
      'listener.name.sasl_ssl.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
      'listener.name.sasl_ssl.ssl.keystore.type': 'PKCS12',
      'listener.name.sasl_ssl.ssl.keystore.location': broker.pkcs12File,
      'listener.name.sasl_ssl.ssl.keystore.password': broker.password,
      'listener.name.sasl_ssl.ssl.key.password': broker.password,
    },
    // SCRAM credentials live in the cluster's metadata; the storage tool writes them at format time.
    formatArgs: (['scram-sha-512', 'scram-sha-256'] as const).flatMap((m) => [
      '--add-scram',
      `${m.toUpperCase()}=[name=${users[m].username},password=${users[m].password}]`,
    ]),
  };
}

const properties = (entries: Record<string, string>) =>
  `${Object.entries(entries)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;

async function brokerAnswers(brokers: string[]): Promise<boolean> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function waitFor(what: string, child: ChildProcess, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}; see its log`);
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not become ready in 90 s`);
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exited with code ${code}`))));
    child.on('error', reject);
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(timer);
}
