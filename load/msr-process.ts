// MSR as `npm start` runs it (the built bundle, its heap flags), in a process of its own, for the
// benchmarks that report the server's own memory: read from /proc, apart from the benchmark's.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { buildServer, startArguments } from '../scripts/build-server.js';

const ROOT = new URL('../', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let serverArguments: Promise<string[]> | undefined;

export interface MsrProcess {
  readonly child: ChildProcess;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts MSR with `env` over a plain setting (any free port, no authentication, no cleanup job);
 * built once per benchmark run. `profileDir`: the process writes a CPU profile there as it exits.
 */
export async function startMsrProcess(
  env: Record<string, string>,
  options: { profileDir?: string } = {},
): Promise<MsrProcess> {
  serverArguments ??= buildServer().then(() => startArguments());
  const profile = options.profileDir ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir] : [];
  const child = spawn(process.execPath, [...profile, ...(await serverArguments)], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      AUTH_MODE: 'none',
      LOG_LEVEL: 'info',
      CLEANUP_SERVICE_ENABLED: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output = (output + d).slice(-50_000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-50_000)));
  const exited = new Promise((r) => child.once('exit', r));
  for (let i = 0; i < 600; i++) {
    const match = /"port":(\d+),"msg":"MSR listening/.exec(output);
    if (match) {
      return {
        child,
        port: Number(match[1]),
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      };
    }
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`MSR did not start:\n${output}`);
}

/** Peak resident memory of a process so far (VmHWM), in MB. */
export async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024);
}

/** Resident memory of a process now (VmRSS), in MB. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
}
