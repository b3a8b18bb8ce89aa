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
  /** The other processes the caller named (a Kafka broker). */
  readonly othersPct: number;
}

/**
 * Starts a window over this process, the given database backends and any other processes; the
 * result ends it.
 */
export async function cpuWindow(
  backendPids: readonly number[],
  otherPids: readonly number[] = [],
): Promise<() => Promise<CpuShares>> {
  const started = performance.now();
  const server = process.cpuUsage();
  const backends = await cpuTimes(backendPids);
  const others = await cpuTimes(otherPids);
  return async () => {
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(server);
    const pct = (ms: number) => Math.round((ms / wallMs) * 100);
    return {
      serverPct: pct((used.user + used.system) / 1000),
      databasePct: pct(await usedSince(backends)),
      othersPct: pct(await usedSince(others)),
    };
  };
}

async function cpuTimes(pids: readonly number[]): Promise<Map<number, number>> {
  const times = new Map<number, number>();
  for (const pid of pids) {
    const ms = await processCpuMs(pid);
    if (ms !== undefined) times.set(pid, ms);
  }
  return times;
}

async function usedSince(before: ReadonlyMap<number, number>): Promise<number> {
  let ms = 0;
  for (const [pid, then] of before) ms += ((await processCpuMs(pid)) ?? then) - then;
  return ms;
}
