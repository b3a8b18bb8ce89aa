// The benchmark report as one self-contained HTML page with inline SVG charts (no script, no
// library: the figures are few and static). Written by `npm run bench` next to bench.md, or
// again from bench.json with `npx tsx load/report.ts`.
import { readFile, writeFile } from 'node:fs/promises';
import type { DatasetFigures } from './bench.js';

interface Bar {
  readonly label: string;
  readonly value: number;
  readonly note?: string;
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = ['#2f6fb0', '#d9822b', '#3a9d5d', '#b03a48', '#7a5cb0'];

/** Horizontal bars, one row each, with the value printed; a log scale when values span decades. */
function barChart(title: string, unit: string, bars: readonly Bar[]): string {
  const width = 720;
  const row = 26;
  const left = 290;
  const height = bars.length * row + 40;
  const max = Math.max(...bars.map((b) => b.value), 1);
  const min = Math.max(Math.min(...bars.map((b) => b.value).filter((v) => v > 0)), 0.1);
  const log = max / min > 50;
  const scale = (v: number) =>
    log
      ? (Math.log10(Math.max(v, min / 2)) - Math.log10(min / 2)) / (Math.log10(max) - Math.log10(min / 2))
      : v / max;
  const rows = bars
    .map((b, i) => {
      const y = 30 + i * row;
      const w = Math.max(1, scale(b.value) * (width - left - 150));
      return `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${escape(b.label)}</text>
<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${row - 8}" fill="${COLORS[i % COLORS.length]}"/>
<text x="${left + w + 6}" y="${y + 14}">${b.value.toLocaleString('en')} ${unit}${b.note ? ` (${escape(b.note)})` : ''}</text>`;
    })
    .join('\n');
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="12" font-family="sans-serif">
<text x="0" y="16" font-weight="bold">${escape(title)}${log ? ' (log scale)' : ''}</text>
${rows}
</svg></figure>`;
}

/** Lines over a numeric x axis (session counts), one per series. */
function lineChart(
  title: string,
  xLabel: string,
  unit: string,
  xs: readonly number[],
  series: Record<string, readonly number[]>,
): string {
  const width = 720;
  const height = 300;
  const [left, right, top, bottom] = [110, 230, 30, 40];
  const maxY = Math.max(1, ...Object.values(series).flat());
  const maxX = Math.max(...xs);
  const px = (x: number) => left + (x / maxX) * (width - left - right);
  const py = (y: number) => height - bottom - (y / maxY) * (height - top - bottom);
  const lines = Object.entries(series)
    .map(([name, ys], i) => {
      const points = xs.map((x, j) => `${px(x).toFixed(1)},${py(ys[j]!).toFixed(1)}`).join(' ');
      const dots = xs
        .map(
          (x, j) =>
            `<circle cx="${px(x).toFixed(1)}" cy="${py(ys[j]!).toFixed(1)}" r="3" fill="${COLORS[i]}"/>`,
        )
        .join('');
      return `<polyline points="${points}" fill="none" stroke="${COLORS[i]}" stroke-width="2"/>${dots}
<text x="${width - right + 10}" y="${top + 16 + i * 18}" fill="${COLORS[i]}">${escape(name)}</text>`;
    })
    .join('\n');
  const ticks = xs
    .map((x) => `<text x="${px(x).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${x}</text>`)
    .join('');
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="12" font-family="sans-serif">
<text x="0" y="16" font-weight="bold">${escape(title)}</text>
<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#888"/>
<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#888"/>
<text x="${left - 6}" y="${top + 4}" text-anchor="end">${maxY} ${unit}</text>
<text x="${left - 6}" y="${height - bottom}" text-anchor="end">0</text>
${ticks}<text x="${(left + width - right) / 2}" y="${height - 6}" text-anchor="middle">${escape(xLabel)}</text>
${lines}
</svg></figure>`;
}

/** Counts of seek times per 25 ms bin. */
function histogram(title: string, samples: readonly number[]): string {
  const bin = 25;
  const counts = new Map<number, number>();
  for (const s of samples) counts.set(Math.floor(s / bin), (counts.get(Math.floor(s / bin)) ?? 0) + 1);
  const bars = [...counts.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([b, n]) => ({ label: `${b * bin}-${(b + 1) * bin} ms`, value: n }));
  return barChart(title, 'seeks', bars);
}

export function htmlReport(machine: string, results: readonly DatasetFigures[], markdown: string): string {
  const sections = results.map((r) => {
    const seekBars: Bar[] = [
      { label: 'MSR: seek to complete keyframe, p50', value: r.replay.seek.completeP50 },
      { label: 'MSR: state at T in SQL, p50', value: r.stateAtT.p50Ms },
      { label: 'naive DISTINCT ON query, p50', value: r.naiveDistinctOn.p50Ms },
      ...(r.naiveServer
        ? [{ label: 'naive server: fold from the start, p50', value: r.naiveServer.scanState.p50Ms }]
        : []),
      ...(r.kafka ? [{ label: 'Kafka: fold the change topics, p50', value: r.kafka.p50Ms }] : []),
    ];
    const throughput: Bar[] = [
      { label: 'MSR: one session at max speed', value: r.replay.maxSpeed.eventsPerSecond },
      { label: 'raw pg-cursor read of the same rows', value: r.rawCursor.rowsPerSecond },
      ...(r.naiveServer
        ? [{ label: 'naive server: OFFSET/LIMIT polling', value: r.naiveServer.poll.rowsPerSecond }]
        : []),
      ...(r.kafka ? [{ label: 'Kafka consumer folding records', value: r.kafka.recordsPerSecond }] : []),
    ];
    const xs = r.replay.concurrent.map((c) => c.sessions);
    const slow = r.replay.slowClients;
    const slowText = slow
      ? `<p>Slow clients: ${slow.clients} sockets stopped reading while their sessions played at 100x for ${slow.seconds} s. ` +
        `The server sent ${slow.coalescedFrames.toLocaleString('en')} coalesced frames, grew by ${slow.rssGrowthKbPerClient} KiB per client (RSS at the peak, after GC), ` +
        `and closed ${slow.closedTooSlow} of them with 4008 after the 30 s limit.</p>`
      : '';
    const backup = r.backup
      ? `<p>Backup: ${r.backup.megabytes.toLocaleString('en')} MB (${r.backup.mbPerMillionEvents} MB per million events) in ${r.backup.backupMs.toLocaleString('en')} ms; ` +
        `restored in ${r.backup.restoreMs.toLocaleString('en')} ms, ${r.backup.restoredEvents.toLocaleString('en')} events, state equal at ${r.backup.statesEqual} of ${r.backup.statesChecked} times.</p>`
      : '';
    return `<h2>${escape(r.name)} (${r.dialect})</h2>
${barChart('Time to the state at T (lower is better)', 'ms', seekBars)}
${r.replay.seek.completeSamples ? histogram('Seek to complete keyframe over WebSocket: distribution', r.replay.seek.completeSamples) : ''}
${barChart('Events per second for one reader (higher is better)', 'events/s', throughput)}
${lineChart('Frame lateness against concurrent 1x sessions', 'sessions', 'ms', xs, {
  'lateness p50': r.replay.concurrent.map((c) => c.latenessP50),
  'lateness p99': r.replay.concurrent.map((c) => c.latenessP99),
})}
${
  r.replay.concurrent.every((c) => c.serverCpuPct !== undefined)
    ? lineChart('CPU against concurrent 1x sessions (% of one core)', 'sessions', '%', xs, {
        server: r.replay.concurrent.map((c) => c.serverCpuPct ?? 0),
        'its PostgreSQL backends': r.replay.concurrent.map((c) => c.databaseCpuPct ?? 0),
        'clients (own process)': r.replay.concurrent.map((c) => c.clientsCpuPct ?? 0),
      })
    : ''
}
${
  r.replay.profile500
    ? barChart(
        `Server self time by function, 500 playing sessions (idle ${r.replay.profile500.hot.find((h) => h.name === '(idle)')?.selfPct ?? 0} %)`,
        '%',
        r.replay.profile500.hot
          .filter((h) => h.name !== '(idle)')
          .slice(0, 10)
          .map((h) => ({ label: h.name.slice(0, 45), value: h.selfPct })),
      )
    : ''
}
${lineChart('Database connections against concurrent sessions', 'sessions', 'connections', xs, {
  'MSR (fixed pool)': r.replay.concurrent.map((c) => c.dbConnections),
  'naive server (one per session)': xs,
})}
${slowText}
${backup}
${barChart('Server memory growth after GC (clients in their own process)', 'KiB', [
  { label: 'RSS per idle socket', value: Math.max(0, r.replay.memory.idleSocketKb) },
  { label: 'RSS per playing 1x session', value: r.replay.memory.playingSessionKb },
  ...(r.replay.memory.playingSessionHeapKb !== undefined
    ? [{ label: 'JS heap per playing 1x session', value: Math.max(0, r.replay.memory.playingSessionHeapKb) }]
    : []),
])}`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MSR benchmark</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}figure{margin:1.5em 0}
pre{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}</style></head>
<body><h1>MSR benchmark</h1><p>${escape(machine)}. Every ratio compares figures taken in the same run.</p>
${sections.join('\n')}
<h2>All figures</h2><pre>${escape(markdown)}</pre>
</body></html>
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = new URL('./results/', import.meta.url);
  const { machine, results: figures } = JSON.parse(await readFile(new URL('bench.json', results), 'utf8'));
  const markdown = await readFile(new URL('bench.md', results), 'utf8');
  await writeFile(new URL('bench.html', results), htmlReport(machine, figures, markdown));
}
