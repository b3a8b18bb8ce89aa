// The hardening figures in one run: seek latency over WebSocket alone and while 60 clients call
// GET /api/v1/state in a loop (MAX_STATE_REQUESTS bounds them; the rest get 429 BUSY), and the
// server's memory per idle socket. Demo city, 6 hours of history, a fresh embedded PostgreSQL.
// Usage: npm run bench:hardening
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { ReplayClient, type WebSocketLike } from '@msr/protocol';
import type { KeyframeMessage } from '@msr/protocol/messages';
import { createApp } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/logger.js';
import { ClientProcess } from './client-process.js';
import { percentile } from './percentile.js';

const dir = await mkdtemp(path.join(tmpdir(), 'msr-hardening-'));
const app = await createApp(loadConfig({ MSR_DATA_DIR: dir, PORT: '0', DEMO: 'true' }), {
  log: createLogger('warn'),
  demoHistoryMs: 6 * 3_600_000,
});
try {
  while (app.demo?.status.state !== 'live') await new Promise((r) => setTimeout(r, 200));
  const base = `127.0.0.1:${app.port}`;
  const { earliest, latest } = (await (await fetch(`http://${base}/api/v1/availability`)).json()) as {
    earliest: number;
    latest: number;
  };
  // First, while the server has served nothing else: later garbage would be freed meanwhile.
  global.gc?.();
  const quiet = process.memoryUsage();
  const idle = await ClientProcess.start({
    url: `ws://${base}/v1/replay`,
    mode: 'idle',
    count: 5000,
    earliest,
    latest,
  });
  await new Promise((r) => setTimeout(r, 500));
  global.gc?.();
  const now = process.memoryUsage();
  const perIdleSocket = {
    rss: Math.round((now.rss - quiet.rss) / 5000),
    heap: Math.round((now.heapUsed + now.external - quiet.heapUsed - quiet.external) / 5000),
  };
  await idle.finish();

  const client = await ReplayClient.connect(`ws://${base}/v1/replay`, {
    webSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
  });
  await client.open({ from: earliest, to: latest, at: earliest });
  const seeks = async (n: number) => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = Math.round(earliest + (((i * 7919) % 1000) / 1000) * (latest - earliest));
      const done = client.waitFor((m): m is KeyframeMessage => m.type === 'keyframe' && m.last, 120_000);
      const started = performance.now();
      await client.seek(t);
      await done;
      ms.push(performance.now() - started);
    }
    return { p50: Math.round(percentile(ms, 50)), p95: Math.round(percentile(ms, 95)) };
  };
  const alone = await seeks(20);

  let stop = false;
  const answers = { ok: 0, busy: 0, other: 0 };
  const callers = Array.from({ length: 60 }, async () => {
    while (!stop) {
      const response = await fetch(`http://${base}/api/v1/state?t=${Math.round((earliest + latest) / 2)}`);
      await response.arrayBuffer();
      if (response.status === 200) answers.ok++;
      else if (response.status === 429) answers.busy++;
      else answers.other++;
    }
  });
  const loaded = await seeks(20);
  stop = true;
  await Promise.all(callers);
  client.disconnect();

  process.stdout.write(
    [
      '# MSR hardening figures',
      '',
      '| measure | value |',
      '| --- | --- |',
      `| seek to complete keyframe, alone, p50 / p95 | ${alone.p50} / ${alone.p95} ms |`,
      `| the same while 60 clients call GET /api/v1/state in a loop, p50 / p95 | ${loaded.p50} / ${loaded.p95} ms (state calls: ${answers.ok} answered 200, ${answers.busy} 429 BUSY, ${answers.other} other) |`,
      `| server memory per idle socket (5,000 sockets in another process, after GC): RSS / JS heap and external | ${perIdleSocket.rss} / ${perIdleSocket.heap} B |`,
      '',
    ].join('\n'),
  );
} finally {
  await app.stop();
  await rm(dir, { recursive: true, force: true });
}
