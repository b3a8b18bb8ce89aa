import { spawn } from 'node:child_process';
import { buildServer, startArguments } from '../../scripts/build-server.js';

const root = new URL('../../', import.meta.url).pathname;
// What `npm start` builds before it runs (each test file builds it once), run as it runs it.
await buildServer();
const serverArguments = await startArguments();

/** The server as `npm start` runs it, without npm in between so signals reach it. */
export function startServerProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, serverArguments, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: 'pipe',
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  /** The port from the "MSR listening" log line, once it appears. */
  const port = async (timeoutMs = 60_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = /"port":(\d+),"msg":"MSR listening/.exec(output);
      if (match) return Number(match[1]);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`server did not start:\n${output}`);
  };
  return { child, exited, port, output: () => output };
}
