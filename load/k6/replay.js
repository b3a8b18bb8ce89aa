// k6 load test of MSR's replay socket over the msr.v1.json subprotocol (protocol/PROTOCOL.md).
// Each virtual user opens a session in the last hour of history, waits for the keyframe, plays at
// its scenario's speed (1x, 10x, max), seeks every few seconds, then closes, and again.
//
//   k6 run load/k6/replay.js                                   # against ws://127.0.0.1:8080
//   k6 run -e MSR_URL=ws://host:8080 -e VUS=50 -e DURATION=2m -e TOKEN=... load/k6/replay.js
//
// Options (environment): MSR_URL, TOKEN (sent as a Bearer header), VUS (per speed), DURATION,
// SPEEDS (comma list of 1, 10, max...), SESSION_SECONDS (one session's life), SEEK_EVERY_S,
// KEYFRAME_P95_MS (threshold). Custom metrics: msr_keyframe_ms (open or seek to the last keyframe
// part), msr_keyframes, msr_frame_lateness_ms (a frame's arrival against the session clock,
// finite speeds), msr_frames, msr_frame_bytes, msr_entities, msr_errors (tagged by code), msr_sessions.
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';

const BASE = (__ENV.MSR_URL || 'ws://127.0.0.1:8080').replace(/\/$/, '');
const HTTP_BASE = BASE.replace(/^ws/, 'http');
const VUS = Number(__ENV.VUS || 5);
const DURATION = __ENV.DURATION || '30s';
const SPEEDS = (__ENV.SPEEDS || '1,10,max').split(',').map((s) => s.trim());
const SESSION_SECONDS = Number(__ENV.SESSION_SECONDS || 15);
const SEEK_EVERY_S = Number(__ENV.SEEK_EVERY_S || 5);
const HEADERS = __ENV.TOKEN ? { Authorization: `Bearer ${__ENV.TOKEN}` } : {};

const keyframeMs = new Trend('msr_keyframe_ms', true);
const keyframes = new Counter('msr_keyframes');
const latenessMs = new Trend('msr_frame_lateness_ms', true);
const frames = new Counter('msr_frames');
const frameBytes = new Counter('msr_frame_bytes', true);
const entities = new Counter('msr_entities');
const errors = new Counter('msr_errors');
const sessions = new Counter('msr_sessions');

export const options = {
  scenarios: Object.fromEntries(
    SPEEDS.map((speed) => [
      `speed_${speed}`,
      { executor: 'constant-vus', vus: VUS, duration: DURATION, env: { SPEED: speed }, tags: { speed } },
    ]),
  ),
  thresholds: {
    msr_errors: ['count<1'],
    msr_keyframe_ms: [`p(95)<${Number(__ENV.KEYFRAME_P95_MS || 3000)}`],
    'msr_frame_lateness_ms{speed:1}': ['p(99)<500'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  const availability = http.get(`${HTTP_BASE}/api/v1/availability`, { headers: HEADERS });
  if (!check(availability, { 'availability answers': (r) => r.status === 200 })) {
    errors.add(1, { code: `HTTP_${availability.status}` });
    return;
  }
  const { earliest, latest } = availability.json();
  const from = Math.max(earliest, latest - 3_600_000);
  const to = latest;
  const randomTime = () => from + Math.random() * (to - from) * 0.9;
  const speed = __ENV.SPEED === 'max' || __ENV.SPEED === '-max' ? __ENV.SPEED : Number(__ENV.SPEED || 1);

  const ws = new WebSocket(`${BASE}/v1/replay`, 'msr.v1.json', { headers: HEADERS });
  let rid = 0;
  let requestedAt = 0; // when the open or seek that the next keyframe answers was sent
  let anchor = null; // {wall, t}: the first frame of the current epoch, for lateness
  let epoch = -1;
  let playing = false;
  let closing = false;
  let seeker;
  let closer;
  const send = (message) => ws.send(JSON.stringify({ rid: ++rid, ...message }));

  ws.onopen = () => {
    requestedAt = Date.now();
    send({ type: 'open', from, to, at: randomTime(), speed });
    seeker = setInterval(() => {
      if (!playing || closing) return;
      requestedAt = Date.now();
      send({ type: 'seek', t: randomTime() });
    }, SEEK_EVERY_S * 1000);
    closer = setTimeout(() => {
      closing = true;
      send({ type: 'close' });
    }, SESSION_SECONDS * 1000);
  };

  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    switch (message.type) {
      case 'opened':
        sessions.add(1);
        break;
      case 'keyframe':
        entities.add(message.entities.length);
        if (message.last) {
          keyframeMs.add(Date.now() - requestedAt);
          keyframes.add(1);
          epoch = message.epoch;
          anchor = null;
          // After a seek the clock keeps its play state, but a session that reached its end paused.
          playing = true;
          if (!closing) send({ type: 'play' });
        }
        break;
      case 'frame': {
        frames.add(1);
        frameBytes.add(event.data.length);
        if (typeof speed === 'number' && message.epoch === epoch) {
          const now = Date.now();
          if (!anchor) anchor = { wall: now, t: message.t };
          else latenessMs.add(Math.max(0, now - anchor.wall - (message.t - anchor.t) / speed));
        }
        break;
      }
      case 'error':
        errors.add(1, { code: message.code });
        break;
      case 'ok':
        if (closing) ws.close();
        break;
      default:
        break;
    }
  };

  ws.onclose = (event) => {
    clearInterval(seeker);
    clearTimeout(closer);
    check(event, { 'closed normally': (e) => closing && (e.code === 1000 || e.code === 1005) });
    if (!closing) errors.add(1, { code: `CLOSE_${event.code}` });
  };

  ws.onerror = (event) => {
    errors.add(1, { code: 'SOCKET_ERROR' });
    console.error(`socket error: ${event.error}`);
  };
}
