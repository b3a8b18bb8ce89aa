// The viewer: one replay session drawn on a canvas, with the controls a user expects: an activity
// strip over the timeline, play-until, a link that opens at the same state, and an entity
// inspector. It uses the same typed client as the tests and load scripts.
import { ReplayClient } from '../protocol/client.js';
import type { Speed } from '../protocol/messages.js';
import { drawActivity } from './activity-strip.js';
import { Api, type Activity } from './api.js';
import { Inspector } from './inspector.js';
import { parseTime, timeText } from './time-text.js';

const STATUS_COLOURS: Record<string, string> = {
  available: '#4caf50',
  dispatched: '#ffb300',
  en_route: '#29b6f6',
  on_scene: '#ef5350',
  returning: '#ab47bc',
};
/** How far an arrow key steps. */
const STEP_MS = 10_000;
/** How often the activity strip is read again (the live edge moves on). */
const ACTIVITY_EVERY_MS = 30_000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>('map');
const context = canvas.getContext('2d')!;
const strip = $<HTMLCanvasElement>('activity');
const timeline = $<HTMLInputElement>('timeline');
const playButton = $<HTMLButtonElement>('play');
const speedChoice = $<HTMLSelectElement>('speed-choice');
const status = (text: string) => ($('status').textContent = text);

/** Where each entity was drawn, for picking one with a click. */
let drawn: { x: number; y: number; key: string }[] = [];

function speedOf(value: string): Speed {
  return value === 'max' || value === '-max' ? value : Number(value);
}

function project(lat: number, lon: number, box: { lat: [number, number]; lon: [number, number] }) {
  const x = ((lon - box.lon[0]) / (box.lon[1] - box.lon[0] || 1)) * (canvas.width - 40) + 20;
  const y =
    canvas.height - (((lat - box.lat[0]) / (box.lat[1] - box.lat[0] || 1)) * (canvas.height - 40) + 20);
  return [x, y] as const;
}

function draw(client: ReplayClient, inspector: Inspector) {
  context.clearRect(0, 0, canvas.width, canvas.height);
  const points: { lat: number; lon: number; key: string; status: string }[] = [];
  for (const [key, state] of client.state) {
    const lat = Number(state.lat);
    const lon = Number(state.lon);
    if (Number.isFinite(lat) && Number.isFinite(lon))
      points.push({ lat, lon, key, status: String(state.status ?? '') });
  }
  drawn = [];
  if (points.length > 0) {
    const box = {
      lat: [Math.min(...points.map((p) => p.lat)), Math.max(...points.map((p) => p.lat))] as [number, number],
      lon: [Math.min(...points.map((p) => p.lon)), Math.max(...points.map((p) => p.lon))] as [number, number],
    };
    for (const p of points) {
      const [x, y] = project(p.lat, p.lon, box);
      drawn.push({ x, y, key: p.key });
      if (p.key.split('|')[0]!.endsWith('incident')) {
        context.fillStyle = p.status === 'closed' ? '#607d8b' : '#ff1744';
        context.fillRect(x - 4, y - 4, 8, 8);
      } else {
        context.fillStyle = STATUS_COLOURS[p.status] ?? '#cfd8dc';
        context.beginPath();
        context.arc(x, y, 2.5, 0, Math.PI * 2);
        context.fill();
      }
      if (p.key === inspector.key) {
        context.strokeStyle = '#ffffff';
        context.beginPath();
        context.arc(x, y, 7, 0, Math.PI * 2);
        context.stroke();
      }
    }
  }
  if (inspector.key) inspector.showState(client.state.get(inspector.key));
  $('count').textContent = String(client.state.size);
  $('time').textContent = client.t ? timeText(client.t) : '–';
  $('achieved').textContent = client.playing ? `${client.achievedSpeed}×` : 'paused';
  playButton.textContent = client.playing ? 'Pause' : 'Play';
  if (document.activeElement !== timeline) timeline.value = String(Math.round(client.t));
}

/** The page's own address for the replay's state now: ?t=&speed=&tables=&entity=. */
function shareUrl(client: ReplayClient, inspector: Inspector, tables: string | null): string {
  const url = new URL(location.href);
  url.search = '';
  url.searchParams.set('t', String(Math.round(client.t)));
  url.searchParams.set('speed', speedChoice.value);
  if (tables) url.searchParams.set('tables', tables);
  if (inspector.key) url.searchParams.set('entity', inspector.key);
  return url.toString();
}

async function main() {
  $('legend').innerHTML = Object.entries(STATUS_COLOURS)
    .map(([name, colour]) => `<span><i style="background:${colour}"></i>${name}</span>`)
    .join('');
  const params = new URLSearchParams(location.search);
  // With AUTH_MODE=jwt the platform opens the viewer with ?access_token=...; it is passed on.
  const token = params.get('access_token') ?? undefined;
  const api = new Api(token);
  const inspector = new Inspector(api);
  const availability = await api.availability();
  if (availability.earliest === null || availability.latest === null) {
    status('no history stored yet');
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const client = await ReplayClient.connect(`${scheme}://${location.host}/v1/replay`, {
    reconnect: true,
    ...(token ? { token } : {}),
  });
  const from = availability.earliest;
  // The range reaches into the future so that the session can follow live events.
  const to = Math.min(from + 7 * 86_400_000 - 60_000, Date.now() + 6 * 3_600_000);
  // A shared link opens at its time, speed, tables and entity.
  const askedT = Number(params.get('t'));
  const at =
    Number.isFinite(askedT) && askedT > 0
      ? Math.min(Math.max(askedT, from), Date.now())
      : availability.latest;
  if (params.get('speed') && [...speedChoice.options].some((o) => o.value === params.get('speed')))
    speedChoice.value = params.get('speed')!;
  const tables = params.get('tables');
  const opened = await client.open({
    from,
    to,
    at,
    speed: speedOf(speedChoice.value),
    ...(tables ? { tables: tables.split(',') } : {}),
  });
  timeline.min = String(from);
  timeline.max = String(Date.now());
  $('range-start').textContent = timeText(from).slice(0, 19);
  $('session').textContent = opened.session.slice(0, 8);
  $('speed').textContent = `${speedChoice.value}×`;
  status('connected');

  let activity: Activity | undefined;
  const readActivity = async () => {
    const now = Date.now();
    activity = await api.activity(from, now, Math.max(10, Math.floor(strip.width / 4)));
    $('range-end').textContent = timeText(now).slice(0, 19);
    drawActivity(strip, activity, client.t);
  };

  let frameRequested = false;
  client.on(() => {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      timeline.max = String(Math.max(Number(timeline.max), Date.now()));
      draw(client, inspector);
      if (activity) drawActivity(strip, activity, client.t);
    });
  });
  client.on((m) => {
    if (m.type === 'error') status(`${m.code}: ${m.message}`);
    if (m.type === 'end') status('end of range');
  });
  // Only now: the keyframe may arrive while the strip is read, and the listeners above draw it.
  void readActivity().catch((err: Error) => status(`activity: ${err.message}`));
  setInterval(() => void readActivity().catch(() => undefined), ACTIVITY_EVERY_MS);
  const entity = params.get('entity');
  if (entity) {
    // Once the keyframe is in, so that its state shows.
    await client.waitFor((m) => m.type === 'keyframe' && m.last, 30_000).catch(() => undefined);
    await inspector.inspect(entity, client.state.get(entity), client.t);
  }

  // A refused step shows in the status line, as the server's error messages do.
  const attempt = (work: () => Promise<unknown>) =>
    void work().catch((err: unknown) => status(`error: ${(err as Error).message}`));
  const togglePlay = () => attempt(() => (client.playing ? client.pause() : client.play()));
  playButton.addEventListener('click', togglePlay);
  speedChoice.addEventListener('change', () => {
    $('speed').textContent = `${speedChoice.value}×`;
    attempt(() => client.speed(speedOf(speedChoice.value)));
  });
  timeline.addEventListener('change', () =>
    attempt(() => client.seek(Math.min(Number(timeline.value), Date.now() - 1000))),
  );
  $('play-until').addEventListener('click', () => {
    const until = parseTime($<HTMLInputElement>('until').value, client.t);
    if (!Number.isFinite(until)) return status('until: type a time as HH:MM:SS (UTC) or a date');
    status(`playing until ${timeText(until)}`);
    attempt(() => client.play(until));
  });
  $('share').addEventListener('click', () => {
    const link = shareUrl(client, inspector, tables);
    history.replaceState(null, '', link);
    status(`link: ${link}`);
    // Pages without clipboard permission still have the link in the address bar.
    void navigator.clipboard?.writeText(link).catch(() => undefined);
  });
  canvas.addEventListener('click', (event) => {
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * canvas.width;
    const y = ((event.clientY - box.top) / box.height) * canvas.height;
    let nearest: { key: string; distance: number } | undefined;
    for (const p of drawn) {
      const distance = Math.hypot(p.x - x, p.y - y);
      if (distance < 10 && (!nearest || distance < nearest.distance)) nearest = { key: p.key, distance };
    }
    if (nearest) attempt(() => inspector.inspect(nearest.key, client.state.get(nearest.key), client.t));
  });
  // Keys, when no field has them: space plays or pauses, the arrows step 10 s back or ahead
  // (a seek), + and - pick the next speed in the list.
  document.addEventListener('keydown', (event) => {
    const target = event.target as HTMLElement;
    if (target.tagName === 'INPUT' || target.tagName === 'SELECT') return;
    // A focused button takes space as its own click.
    if (event.key === ' ') {
      if (target.tagName === 'BUTTON') return;
      togglePlay();
    } else if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
      const t = client.t + (event.key === 'ArrowLeft' ? -STEP_MS : STEP_MS);
      attempt(() => client.seek(Math.min(Math.max(t, from), Date.now() - 1000)));
    } else if (event.key === '+' || event.key === '-') {
      const next = speedChoice.selectedIndex + (event.key === '+' ? 1 : -1);
      if (next < 0 || next >= speedChoice.options.length) return;
      speedChoice.selectedIndex = next;
      speedChoice.dispatchEvent(new Event('change'));
    } else return;
    event.preventDefault();
  });
  $('live').addEventListener('click', () => {
    speedChoice.value = '1';
    $('speed').textContent = '1×';
    attempt(async () => {
      await client.speed(1);
      await client.seek(Date.now() - 2000);
      await client.play();
    });
  });
}

main().catch((err: unknown) => status(`error: ${(err as Error).message}`));
