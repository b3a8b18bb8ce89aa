import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Tests that store history or start a server must derive their times from the clock: a literal date
 * ages out of the retention window (MAX_PLAYBACK_RANGE days) and the test starts failing on a later
 * day. This guard fails on any literal date in those folders unless its line says why it cannot
 * age (a `calendar-free:` comment: a column value, a row meant to be older than any window).
 */
const ROOT = new URL('../../', import.meta.url).pathname;
const WATCHED = ['test/integration', 'test/e2e', 'test/support', 'load'];
const LITERAL_DATES: readonly RegExp[] = [
  /\b(19|20)\d\d-[01]\d-[0-3]\d/, // ISO dates and timestamps
  /Date\.UTC\(/,
  /new Date\(\s*['"`\d]/,
  /(?<![\d.])1[4-9]\d{11}(\d{3})?(?![\d.])/, // epoch ms or µs between 2014 and 2033
];

export function literalDates(source: string): { line: number; text: string }[] {
  return source.split('\n').flatMap((text, i) => {
    const bare = text.replace(/(\d)_(?=\d)/g, '$1');
    if (text.includes('calendar-free:')) return [];
    return LITERAL_DATES.some((pattern) => pattern.test(bare)) ? [{ line: i + 1, text: text.trim() }] : [];
  });
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, dir), { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) => {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) return sourceFiles(rel);
      return Promise.resolve(/\.(ts|js)$/.test(e.name) ? [rel] : []);
    }),
  );
  return nested.flat();
}

describe('calendar guard', () => {
  it('finds literal dates in every form it watches for', () => {
    const found = literalDates(
      [
        "prepare_storage('2026-11-21', '2026-11-23')",
        'const start = Date.UTC(2026, 10, 22, 6, 0, 0);',
        "const t = new Date('Nov 22 2026');",
        'const ms = 1795500000000;',
        'const us = 1_795_520_000_123_457;',
        "insert values ('2025-03-04') -- calendar-free: older than any window on purpose",
        'const start = hoursAgo(30);',
        'const port = 8080; const big = 12345678901234567890;',
      ].join('\n'),
    );
    expect(found.map((f) => f.line)).toEqual([1, 2, 3, 4, 5]);
  });

  it('no test that stores history or starts a server uses a literal date', async () => {
    const files = (await Promise.all(WATCHED.map(sourceFiles))).flat();
    expect(files.length).toBeGreaterThan(20);
    const offenders: string[] = [];
    for (const file of files) {
      if (file.endsWith('calendar-guard.test.ts')) continue;
      for (const { line, text } of literalDates(await readFile(path.join(ROOT, file), 'utf8'))) {
        offenders.push(`${file}:${line}: ${text}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
