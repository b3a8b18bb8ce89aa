// CPU time by process over a measurement window, to say where the time goes: the server (the
// benchmark's own process) and its PostgreSQL backends (read from /proc; Linux only).
import { readFile } from 'node:fs/promises';

/** USER_HZ: /proc counts CPU time in ticks of 10 ms on Linux. */
const TICK_MS = 10;

/** User + system CPU time of a process so far, in ms; undefined when it is gone or not readable. */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

export interface CpuShares {
  /** Percent of one core over the window. */
  readonly serverPct: number;
  readonly databasePct: number;
}

/** Starts a window over this process and the given database backends; the result ends it. */
export async function cpuWindow(backendPids: readonly number[]): Promise<() => Promise<CpuShares>> {
  const started = performance.now();
  const server = process.cpuUsage();
  const backends = new Map<number, number>();
  for (const pid of backendPids) {
    const ms = await processCpuMs(pid);
    if (ms !== undefined) backends.set(pid, ms);
  }
  return async () => {
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(server);
    let databaseMs = 0;
    for (const [pid, before] of backends) databaseMs += ((await processCpuMs(pid)) ?? before) - before;
    return {
      serverPct: Math.round(((used.user + used.system) / 1000 / wallMs) * 100),
      databasePct: Math.round((databaseMs / wallMs) * 100),
    };
  };
}
