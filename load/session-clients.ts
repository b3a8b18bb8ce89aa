// The benchmark's WebSocket clients, run in a process of their own so that parsing hundreds of
// sessions' frames does not take the server's event loop (on 2 cores, they get the other one).
// Started by client-process.ts as `node --import tsx load/session-clients.ts '<ClientsPlan JSON>'`.
// On stdout, one JSON line when the sockets (and sessions) are up, and one with the figures after
// any line arrives on stdin; then the clients close and the process exits.
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { percentile } from './percentile.js';

export interface ClientsPlan {
  readonly url: string;
  /**
   * idle: sockets without a session; play: 1x sessions; live: 1x sessions following the live edge
   * (their range from a minute ago to an hour ahead); slow: 100x sessions that stop reading;
   * seek-max: one session timing 30 seeks (or those of seekTimes), then playing at max speed for
   * 10 s (or maxSpeedSeconds; 0: not at all).
   */
  readonly mode: 'idle' | 'play' | 'live' | 'slow' | 'seek-max';
  readonly count: number;
  readonly earliest: number;
  readonly latest: number;
  readonly seekTimes?: readonly number[];
  readonly maxSpeedSeconds?: number;
  /** play: start every session within this many ms of the middle of the range (one incident). */
  readonly startWithinMs?: number;
  /** play: sessions opened at once in waves of this many (default 25). */
  readonly wave?: number;
  /** play: open the sessions and leave them paused. */
  readonly openOnly?: boolean;
  /** The sessions' subprotocol (a JSON one): msr.v1.json unless given. */
  readonly subprotocol?: string;
  /**
   * seek-max: also time every seek on a second socket speaking this (JSON) subprotocol, taking
   * turns with the first so that neither gets the warmer caches.
   */
  readonly compareSubprotocol?: string;
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
  /** seek-max: each seek's time to its first and to its last keyframe part (ms), and the entities. */
  readonly seeks?: SeekTimes;
  /** seek-max with compareSubprotocol: the same seeks on the socket speaking it. */
  readonly seeksCompared?: SeekTimes;
  /** seek-max: changes received while playing at max speed. */
  readonly maxSpeed?: { events: number; seconds: number };
}

/** Session i's start: spread over the day, an hour before its end at the latest, or near its middle. */
const startOf = (plan: ClientsPlan, i: number) =>
  plan.startWithinMs === undefined
    ? Math.round(plan.earliest + (((i * 104729) % 997) / 997) * (plan.latest - plan.earliest - 3_600_000))
    : Math.round((plan.earliest + plan.latest) / 2 + (((i * 104729) % 997) / 997) * plan.startWithinMs);

export interface SeekTimes {
  readonly firstByte: number[];
  readonly complete: number[];
  readonly entities: number;
}

interface Reply {
  type: string;
  rid?: number;
  last?: boolean;
  playing?: boolean;
  t?: number;
  code?: string;
  entities?: unknown[];
  /** A keyframe part in protocol v2. */
  tables?: Record<string, Record<string, unknown>>;
  changes?: { ts: number }[];
}

/** The entities a keyframe part holds, in either version. */
const partEntities = (m: Reply) =>
  m.tables
    ? Object.values(m.tables).reduce((n, states) => n + Object.keys(states).length, 0)
    : (m.entities?.length ?? 0);

/**
 * One socket speaking protocol v1 (or v2) JSON as a bare client: it keeps no replayed state (500
 * sessions of 10,000 entities each would be gigabytes in this process), only what the figures need.
 */
class BareSession {
  private nextRid = 1;
  private readonly waiters: { match: (m: Reply) => boolean; resolve: () => void }[] = [];
  onMessage: (m: Reply) => void = () => undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as Reply;
      if (message.type === 'error') throw new Error(`server error ${message.code}`);
      this.onMessage(message);
      for (const [i, w] of this.waiters.entries()) {
        if (w.match(message)) {
          this.waiters.splice(i, 1);
          w.resolve();
          break;
        }
      }
    });
  }

  static connect(url: string, subprotocol = 'msr.v1.json'): Promise<BareSession> {
    const ws = new WebSocket(url, [subprotocol]);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new BareSession(ws)));
      ws.once('error', reject);
    });
  }

  /** Sends a request; resolves once a message matching `until` (by default its reply) arrives. */
  request(message: Record<string, unknown>, until?: (m: Reply) => boolean): Promise<void> {
    const rid = this.nextRid++;
    const done = new Promise<void>((resolve) =>
      this.waiters.push({ match: until ?? ((m) => m.rid === rid), resolve }),
    );
    this.ws.send(JSON.stringify({ ...message, rid }));
    return done;
  }
}

/** The playing sessions' figures: this process's CPU since `started`, frames and lateness. */
function playedFigures(cpu: NodeJS.CpuUsage, started: number, frames: number, lateness: number[]) {
  const used = process.cpuUsage(cpu);
  return {
    cpuPct: Math.round(((used.user + used.system) / 1000 / (performance.now() - started)) * 100),
    frames,
    latenessP50: Math.round(percentile(lateness, 50)),
    latenessP99: Math.round(percentile(lateness, 99)),
  };
}

async function playing(plan: ClientsPlan): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const clients = await Promise.all(
    Array.from({ length: plan.count }, () => BareSession.connect(plan.url, plan.subprotocol)),
  );
  // Sessions arrive in waves, of 25 unless the plan says (every keyframe is a full state query);
  // the time to get them all opened is reported apart from the steady-state lateness.
  const openStarted = performance.now();
  const sessions = plan.mode === 'play' ? clients : [];
  const wave = plan.wave ?? 25;
  for (let first = 0; first < sessions.length; first += wave) {
    await Promise.all(
      sessions
        .slice(first, first + wave)
        .map((c, k) =>
          c.request(
            { type: 'open', from: plan.earliest, to: plan.latest, at: startOf(plan, first + k), speed: 1 },
            (m) => m.type === 'keyframe' && m.last === true,
          ),
        ),
    );
  }
  const openMs = performance.now() - openStarted;
  const lateness: number[] = [];
  let frames = 0;
  const cpu = process.cpuUsage();
  const playStarted = performance.now();
  await Promise.all(
    (plan.openOnly ? [] : sessions).map((c) => {
      // Lateness against the session's own clock: the first playing clock anchors replay time
      // to wall time, and frame t should arrive at anchor + (t - anchor t) at 1x.
      let origin: { wall: number; t: number } | undefined;
      c.onMessage = (m) => {
        if (m.type === 'clock' && m.playing && !origin) origin = { wall: Date.now(), t: m.t! };
        if (m.type === 'frame' && origin) {
          frames += 1;
          lateness.push(Date.now() - (origin.wall + (m.t! - origin.t)));
        }
      };
      return c.request({ type: 'play' });
    }),
  );
  return {
    openMs,
    finish: async () => {
      const done = playedFigures(cpu, playStarted, frames, lateness);
      await Promise.all(sessions.map((c) => c.request({ type: 'close' })));
      for (const c of clients) c.ws.close();
      return done;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sessions following the live edge at 1x: each change's lateness is its arrival minus its own
 * time (the commit time the writer stamped), counted once the opening is over.
 */
async function following(plan: ClientsPlan): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const clients = await Promise.all(
    Array.from({ length: plan.count }, () => BareSession.connect(plan.url, plan.subprotocol)),
  );
  const openStarted = performance.now();
  // As a viewer going live does: open at the clock and play once the keyframe is in. A 1x session
  // plays on from where it opened, so one that waited would trail the edge by its wait for good.
  for (let first = 0; first < clients.length; first += 25) {
    await Promise.all(
      clients.slice(first, first + 25).map(async (c) => {
        const now = Date.now();
        await c.request(
          { type: 'open', from: now - 60_000, to: now + 3_600_000, at: now, speed: 1 },
          (m) => m.type === 'keyframe' && m.last === true,
        );
        await c.request({ type: 'play' });
      }),
    );
  }
  const openMs = performance.now() - openStarted;
  await sleep(2_000);
  const lateness: number[] = [];
  let frames = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (const c of clients) {
    c.onMessage = (m) => {
      if (m.type !== 'frame') return;
      frames += 1;
      const now = Date.now();
      for (const change of m.changes ?? []) lateness.push(now - change.ts);
    };
  }
  return {
    openMs,
    finish: async () => {
      const done = playedFigures(cpu, started, frames, lateness);
      await Promise.all(clients.map((c) => c.request({ type: 'close' })));
      for (const c of clients) c.ws.close();
      return done;
    },
  };
}

/** Seek latency and full-speed throughput of one session, measured before `ready` is reported. */
async function seekAndMax(
  plan: ClientsPlan,
): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const keyframeAt = (t: number) => (m: Reply) => m.type === 'keyframe' && m.t === t && m.last === true;
  const sockets = await Promise.all(
    [plan.subprotocol, ...(plan.compareSubprotocol ? [plan.compareSubprotocol] : [])].map(async (sp) => {
      const session = await BareSession.connect(plan.url, sp);
      await session.request(
        { type: 'open', from: plan.earliest, to: plan.latest, at: plan.earliest },
        keyframeAt(plan.earliest),
      );
      return { session, times: { firstByte: [] as number[], complete: [] as number[], entities: 0 } };
    }),
  );
  const c = sockets[0]!.session;
  const times =
    plan.seekTimes ??
    Array.from({ length: 30 }, (_, i) =>
      Math.round(plan.earliest + (((i * 7919) % 1000) / 1000) * (plan.latest - plan.earliest - 60_000)),
    );
  for (const [i, t] of times.entries()) {
    // Turns alternate, so that neither socket always seeks into the other's warmed pages.
    for (const { session, times: figures } of i % 2 === 0 ? sockets : [...sockets].reverse()) {
      const started = performance.now();
      let first: number | undefined;
      let entities = 0;
      session.onMessage = (m) => {
        if (m.type !== 'keyframe' || m.t !== t) return;
        first ??= performance.now() - started;
        entities += partEntities(m);
      };
      await session.request({ type: 'seek', t }, keyframeAt(t));
      figures.complete.push(performance.now() - started);
      figures.firstByte.push(first!);
      figures.entities = entities;
    }
  }
  for (const { session } of sockets.slice(1)) {
    await session.request({ type: 'close' });
    session.ws.close();
  }
  let events = 0;
  let seconds = 0;
  const maxSpeedMs = (plan.maxSpeedSeconds ?? 10) * 1000;
  if (maxSpeedMs > 0) {
    await c.request({ type: 'seek', t: plan.earliest }, keyframeAt(plan.earliest));
    await c.request({ type: 'speed', speed: 'max' });
    c.onMessage = (m) => {
      if (m.type === 'frame') events += m.changes?.length ?? 0;
    };
    const maxStarted = performance.now();
    await c.request({ type: 'play' });
    await sleep(maxSpeedMs);
    await c.request({ type: 'pause' });
    seconds = (performance.now() - maxStarted) / 1000;
  }
  await c.request({ type: 'close' });
  c.ws.close();
  return {
    openMs: 0,
    finish: async () => ({
      frames: 0,
      latenessP50: NaN,
      latenessP99: NaN,
      cpuPct: NaN,
      seeks: sockets[0]!.times,
      ...(sockets[1] ? { seeksCompared: sockets[1].times } : {}),
      maxSpeed: { events, seconds },
    }),
  };
}

/** Sockets whose sessions play at 100x and which stop reading: the kernel buffers fill, then the server's. */
async function slow(plan: ClientsPlan): Promise<{ openMs: number; finish: () => Promise<ClientsDone> }> {
  const started = performance.now();
  const sockets = await Promise.all(
    Array.from({ length: plan.count }, async (_, i) => {
      const c = await BareSession.connect(plan.url, plan.subprotocol);
      // In the first half of the day: 50 s at 100x must not reach the end of the history.
      const at = Math.round(plan.earliest + ((i / plan.count) * (plan.latest - plan.earliest)) / 2);
      // Not awaited: once reading stops, the replies may never be read.
      void c.request({ type: 'open', from: plan.earliest, to: plan.latest, at, speed: 100 });
      void c.request({ type: 'play' });
      setTimeout(() => (c.ws as unknown as { _socket: { pause(): void } })._socket.pause(), 200);
      return c;
    }),
  );
  return {
    openMs: performance.now() - started,
    finish: async () => {
      for (const c of sockets) c.ws.terminate();
      return { frames: 0, latenessP50: NaN, latenessP99: NaN, cpuPct: NaN };
    },
  };
}

const plan = JSON.parse(process.argv[2]!) as ClientsPlan;
const run =
  plan.mode === 'slow'
    ? await slow(plan)
    : plan.mode === 'seek-max'
      ? await seekAndMax(plan)
      : plan.mode === 'live'
        ? await following(plan)
        : await playing(plan);
process.stdout.write(`${JSON.stringify({ openMs: Math.round(run.openMs) } satisfies ClientsReady)}\n`);
const input = createInterface({ input: process.stdin });
for await (const _line of input) {
  process.stdout.write(`${JSON.stringify(await run.finish())}\n`);
  break;
}
input.close();
process.exit(0);
