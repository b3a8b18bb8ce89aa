// The demo viewer at /: the <msr-player> element with the demo city drawn on a canvas beside it.
// Vehicles are dots coloured by status, incidents squares; a click on one inspects it.
import type { ReplayClient } from '@msr/protocol/core';
import { MsrPlayer } from './msr-player.js';
import { splitEntityKey } from '@msr/protocol/core';

const STATUS_COLOURS: Record<string, string> = {
  available: '#4caf50',
  dispatched: '#ffb300',
  en_route: '#29b6f6',
  on_scene: '#ef5350',
  returning: '#ab47bc',
};

const canvas = document.getElementById('map') as HTMLCanvasElement;
const context = canvas.getContext('2d')!;
const player = document.querySelector('msr-player') as MsrPlayer;

/** Where each entity was drawn, for picking one with a click. */
let drawn: { x: number; y: number; key: string }[] = [];

type Box = { lat: [number, number]; lon: [number, number] };

function project(lat: number, lon: number, box: Box) {
  const x = ((lon - box.lon[0]) / (box.lon[1] - box.lon[0] || 1)) * (canvas.width - 40) + 20;
  const y =
    canvas.height - (((lat - box.lat[0]) / (box.lat[1] - box.lat[0] || 1)) * (canvas.height - 40) + 20);
  return [x, y] as const;
}

function draw(client: ReplayClient) {
  context.clearRect(0, 0, canvas.width, canvas.height);
  const points: { lat: number; lon: number; key: string; status: string }[] = [];
  for (const [key, state] of client.state) {
    const [lat, lon] = [Number(state.lat), Number(state.lon)];
    if (Number.isFinite(lat) && Number.isFinite(lon))
      points.push({ lat, lon, key, status: String(state.status ?? '') });
  }
  drawn = [];
  if (points.length === 0) return;
  const box: Box = {
    lat: [Math.min(...points.map((p) => p.lat)), Math.max(...points.map((p) => p.lat))],
    lon: [Math.min(...points.map((p) => p.lon)), Math.max(...points.map((p) => p.lon))],
  };
  for (const p of points) {
    const [x, y] = project(p.lat, p.lon, box);
    drawn.push({ x, y, key: p.key });
    if (splitEntityKey(p.key).table.endsWith('incident')) {
      context.fillStyle = p.status === 'closed' ? '#607d8b' : '#ff1744';
      context.fillRect(x - 4, y - 4, 8, 8);
    } else {
      context.fillStyle = STATUS_COLOURS[p.status] ?? '#cfd8dc';
      context.beginPath();
      context.arc(x, y, 2.5, 0, Math.PI * 2);
      context.fill();
    }
    if (p.key === player.inspected) {
      context.strokeStyle = '#ffffff';
      context.beginPath();
      context.arc(x, y, 7, 0, Math.PI * 2);
      context.stroke();
    }
  }
}

document.getElementById('legend')!.innerHTML = Object.entries(STATUS_COLOURS)
  .map(([name, colour]) => `<span><i style="background:${colour}"></i>${name}</span>`)
  .join('');
player.addEventListener('msr-change', (event) =>
  draw((event as CustomEvent<{ client: ReplayClient }>).detail.client),
);
canvas.addEventListener('click', (event) => {
  const box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * canvas.width;
  const y = ((event.clientY - box.top) / box.height) * canvas.height;
  let nearest: { key: string; distance: number } | undefined;
  for (const p of drawn) {
    const distance = Math.hypot(p.x - x, p.y - y);
    if (distance < 10 && (!nearest || distance < nearest.distance)) nearest = { key: p.key, distance };
  }
  if (nearest) void player.inspect(nearest.key);
});
