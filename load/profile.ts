// A CPU profile of the benchmark's process (the server) while some work runs, summarised as the
// functions with the most self time, so the report can say where the time goes.
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface HotFunction {
  /** "name (file:line)", or a V8 category such as (garbage collector) or (idle). */
  readonly name: string;
  readonly selfPct: number;
}

export async function profiled<T>(work: () => Promise<T>): Promise<{ result: T; hot: HotFunction[] }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const result = await work();
    const { profile } = (await session.post('Profiler.stop')) as { profile: { nodes: ProfileNode[] } };
    return { result, hot: hottest(profile.nodes, 15) };
  } finally {
    session.disconnect();
  }
}

function hottest(nodes: readonly ProfileNode[], count: number): HotFunction[] {
  const byName = new Map<string, number>();
  let total = 0;
  for (const node of nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/node_modules\//, '').replace(/^.*\/(server|protocol|load)\//, '$1/');
    const name = url ? `${functionName || '(anonymous)'} (${file}:${lineNumber + 1})` : functionName;
    byName.set(name, (byName.get(name) ?? 0) + hits);
  }
  return [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, hits]) => ({ name, selfPct: Math.round((hits / Math.max(1, total)) * 1000) / 10 }));
}
