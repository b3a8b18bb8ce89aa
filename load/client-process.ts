// The parent's side of load/session-clients.ts: starts the clients' process, waits until its
// sockets are up, and asks it for its figures when the measurement window ends.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ClientsDone, ClientsPlan, ClientsReady } from './session-clients.js';

const SCRIPT = new URL('./session-clients.ts', import.meta.url).pathname;

export class ClientProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly lines: AsyncIterator<string>,
    readonly ready: ClientsReady,
  ) {}

  static async start(plan: ClientsPlan): Promise<ClientProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(plan)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const ready = await ClientProcess.next<ClientsReady>(child, lines);
    return new ClientProcess(child, lines, ready);
  }

  /** The clients' process, for its CPU time. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The clients' figures; they close their sessions and the process ends. */
  async finish(): Promise<ClientsDone> {
    this.child.stdin!.write('finish\n');
    const done = await ClientProcess.next<ClientsDone>(this.child, this.lines);
    await new Promise((resolve) =>
      this.child.exitCode === null ? this.child.once('exit', resolve) : resolve(null),
    );
    return done;
  }

  private static async next<T>(child: ChildProcess, lines: AsyncIterator<string>): Promise<T> {
    const { value, done } = await lines.next();
    if (done) {
      child.kill();
      throw new Error(`the clients' process ended early (exit code ${child.exitCode})`);
    }
    return JSON.parse(value as string) as T;
  }
}
