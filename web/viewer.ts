// The viewer: one replay session drawn on a canvas, with the controls a user expects. It uses the
// same typed client as the tests and load scripts.
import { ReplayClient } from '../protocol/client.js';
import type { Speed } from '../protocol/messages.js';

const STATUS_COLOURS: Record<string, string> = {
  available: '#4caf50',
  dispatched: '#ffb300',
  en_route: '#29b6f6',
  on_scene: '#ef5350',
  returning: '#ab47bc',
};

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = $<HTMLCanvasElement>('map');
const context = canvas.getContext('2d')!;
const timeline = $<HTMLInputElement>('timeline');
const playButton = $<HTMLButtonElement>('play');
const speedChoice = $<HTMLSelectElement>('speed-choice');

interface Availability {
  earliest: number | null;
  latest: number | null;
}

function speedOf(value: string): Speed {
  return value === 'max' || value === '-max' ? value : Number(value);
}

function project(lat: number, lon: number, box: { lat: [number, number]; lon: [number, number] }) {
  const x = ((lon - box.lon[0]) / (box.lon[1] - box.lon[0] || 1)) * (canvas.width - 40) + 20;
  const y =
    canvas.height - (((lat - box.lat[0]) / (box.lat[1] - box.lat[0] || 1)) * (canvas.height - 40) + 20);
  return [x, y] as const;
}

function draw(client: ReplayClient) {
  context.clearRect(0, 0, canvas.width, canvas.height);
  const points: { lat: number; lon: number; table: string; status: string }[] = [];
  for (const [key, state] of client.state) {
    const lat = Number(state.lat);
    const lon = Number(state.lon);
    if (Number.isFinite(lat) && Number.isFinite(lon)) {
      points.push({ lat, lon, table: key.split('|')[0]!, status: String(state.status ?? '') });
    }
  }
  if (points.length > 0) {
    const box = {
      lat: [Math.min(...points.map((p) => p.lat)), Math.max(...points.map((p) => p.lat))] as [number, number],
      lon: [Math.min(...points.map((p) => p.lon)), Math.max(...points.map((p) => p.lon))] as [number, number],
    };
    for (const p of points) {
      const [x, y] = project(p.lat, p.lon, box);
      if (p.table.endsWith('incident')) {
        context.fillStyle = p.status === 'closed' ? '#607d8b' : '#ff1744';
        context.fillRect(x - 4, y - 4, 8, 8);
      } else {
        context.fillStyle = STATUS_COLOURS[p.status] ?? '#cfd8dc';
        context.beginPath();
        context.arc(x, y, 2.5, 0, Math.PI * 2);
        context.fill();
      }
    }
  }
  $('count').textContent = String(client.state.size);
  $('time').textContent = client.t ? new Date(client.t).toISOString().replace('T', ' ').slice(0, 23) : '–';
  $('achieved').textContent = client.playing ? `${client.achievedSpeed}×` : 'paused';
  playButton.textContent = client.playing ? 'Pause' : 'Play';
  if (document.activeElement !== timeline) timeline.value = String(Math.round(client.t));
}

async function main() {
  $('legend').innerHTML = Object.entries(STATUS_COLOURS)
    .map(([status, colour]) => `<span><i style="background:${colour}"></i>${status}</span>`)
    .join('');
  // With AUTH_MODE=jwt the platform opens the viewer with ?access_token=...; it is passed on.
  const token = new URLSearchParams(location.search).get('access_token') ?? undefined;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const availability = (await (await fetch('/api/v1/availability', { headers })).json()) as Availability;
  if (availability.earliest === null || availability.latest === null) {
    $('status').textContent = 'no history stored yet';
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
  const opened = await client.open({ from, to, at: availability.latest, speed: speedOf(speedChoice.value) });
  timeline.min = String(from);
  timeline.max = String(Date.now());
  $('session').textContent = opened.session.slice(0, 8);
  $('speed').textContent = `${speedChoice.value}×`;
  $('status').textContent = 'connected';

  let frameRequested = false;
  client.on(() => {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      timeline.max = String(Math.max(Number(timeline.max), Date.now()));
      draw(client);
    });
  });
  client.on((m) => {
    if (m.type === 'error') $('status').textContent = `${m.code}: ${m.message}`;
    if (m.type === 'end') $('status').textContent = 'end of range';
  });

  playButton.addEventListener('click', () => void (client.playing ? client.pause() : client.play()));
  speedChoice.addEventListener('change', () => {
    $('speed').textContent = `${speedChoice.value}×`;
    void client.speed(speedOf(speedChoice.value));
  });
  timeline.addEventListener(
    'change',
    () => void client.seek(Math.min(Number(timeline.value), Date.now() - 1000)),
  );
  $('live').addEventListener('click', () => {
    speedChoice.value = '1';
    $('speed').textContent = '1×';
    const goLive = async () => {
      await client.speed(1);
      await client.seek(Date.now() - 2000);
      await client.play();
    };
    // A refused step shows in the status line, as the server's error messages do.
    goLive().catch((err: unknown) => ($('status').textContent = `error: ${(err as Error).message}`));
  });
}

main().catch((err: unknown) => {
  $('status').textContent = `error: ${(err as Error).message}`;
});
