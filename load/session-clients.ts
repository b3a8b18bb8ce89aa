// The benchmark's WebSocket clients, run in a process of their own so that parsing hundreds of
// sessions' frames does not take the server's event loop (on 2 cores, they get the other one).
// Started by client-process.ts as `node --import tsx load/session-clients.ts '<ClientsPlan JSON>'`.
// On stdout, one JSON line when the sockets (and sessions) are up, and one with the figures after
// any line arrives on stdin; then the clients close and the process exits.
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '../protocol/client.js';
import { percentile } from './percentile.js';

export interface ClientsPlan {
  readonly url: string;
  /** idle: sockets without a session; play: 1x sessions; slow: 100x sessions that stop reading. */
  readonly mode: 'idle' | 'play' | 'slow';
  readonly count: number;
  readonly earliest: number;
  readonly latest: number;
}

export interface ClientsReady {
  readonly openMs: number;
}

export interface ClientsDone {
  readonly frames: number;
  readonly latenessP50: number;
  readonly latenessP99: number;
  /** This process's CPU from the end of the opening to the finish, in percent of one core. */
  readonly cpuPct: number;
}

const factory = (url: string, protocols: string[]) =>
  new WebSocket(url, protocols) as unknown as WebSocketLike;

/** Session i's start: spread over the day, an hour before its end at the latest. */
const startOf = (plan: ClientsPlan, i: number) =>
  Math.round(plan.earliest + (((i * 104729) % 997) / 997) * (plan.latest - plan.earliest - 3_600_000));

async function playing(plan: ClientsPlan): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const connect = () =>
    ReplayClient.connect(plan.url, { webSocket: factory, requestTimeoutMs: 300_000, validate: false });
  const clients = await Promise.all(Array.from({ length: plan.count }, connect));
  // Sessions arrive in waves of 25 (every keyframe is a full state query); the time to get them
  // all opened is reported apart from the steady-state lateness.
  const openStarted = performance.now();
  for (let first = 0; first < clients.length; first += 25) {
    await Promise.all(
      clients.slice(first, first + 25).map(async (c, k) => {
        await c.open({ from: plan.earliest, to: plan.latest, at: startOf(plan, first + k), speed: 1 });
        await c.waitFor((m) => m.type === 'keyframe' && m.last, 300_000);
      }),
    );
  }
  const openMs = performance.now() - openStarted;
  const lateness: number[] = [];
  let frames = 0;
  const cpu = process.cpuUsage();
  const playStarted = performance.now();
  if (plan.mode === 'play') {
    await Promise.all(
      clients.map(async (c) => {
        // Lateness against the session's own clock: the first playing clock anchors replay time
        // to wall time, and frame t should arrive at anchor + (t - anchor t) at 1x.
        let origin: { wall: number; t: number } | undefined;
        c.on((m) => {
          if (m.type === 'clock' && m.playing && !origin) origin = { wall: Date.now(), t: m.t };
          if (m.type === 'frame' && origin) {
            frames += 1;
            lateness.push(Date.now() - (origin.wall + (m.t - origin.t)));
          }
        });
        await c.play();
      }),
    );
  }
  return {
    openMs,
    finish: async () => {
      const used = process.cpuUsage(cpu);
      const done = {
        cpuPct: Math.round(((used.user + used.system) / 1000 / (performance.now() - playStarted)) * 100),
        frames,
        latenessP50: Math.round(percentile(lateness, 50)),
        latenessP99: Math.round(percentile(lateness, 99)),
      };
      await Promise.all(clients.map((c) => (plan.mode === 'play' ? c.close() : undefined)));
      for (const c of clients) c.disconnect();
      return done;
    },
  };
}

/** Sockets whose sessions play at 100x and which stop reading: the kernel buffers fill, then the server's. */
async function slow(plan: ClientsPlan): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const started = performance.now();
  const sockets = await Promise.all(
    Array.from({ length: plan.count }, (_, i) => {
      const ws = new WebSocket(plan.url, ['msr.v1.json']);
      return new Promise<WebSocket>((resolve) =>
        ws.on('open', () => {
          ws.send(
            JSON.stringify({
              type: 'open',
              from: plan.earliest,
              to: plan.latest,
              // In the first half of the day: 40 s at 100x must not reach the end of the history.
              at: Math.round(plan.earliest + ((i / plan.count) * (plan.latest - plan.earliest)) / 2),
              speed: 100,
            }),
          );
          ws.send(JSON.stringify({ type: 'play' }));
          setTimeout(() => (ws as unknown as { _socket: { pause(): void } })._socket.pause(), 200);
          resolve(ws);
        }),
      );
    }),
  );
  return {
    openMs: performance.now() - started,
    finish: async () => {
      for (const ws of sockets) ws.terminate();
      return { frames: 0, latenessP50: NaN, latenessP99: NaN, cpuPct: NaN };
    },
  };
}

const plan = JSON.parse(process.argv[2]!) as ClientsPlan;
const run = plan.mode === 'slow' ? await slow(plan) : await playing(plan);
process.stdout.write(`${JSON.stringify({ openMs: Math.round(run.openMs) } satisfies ClientsReady)}\n`);
const input = createInterface({ input: process.stdin });
for await (const _line of input) {
  process.stdout.write(`${JSON.stringify(await run.finish())}\n`);
  break;
}
input.close();
process.exit(0);
