import { mkdir, readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../server/app.js';
import { createLogger } from '../../server/logger.js';
import type { TestDatabase } from '../support/database.js';
import { chromiumAvailable, launchChromium } from '../../scripts/services/browser.js';
import { startDemoApp } from '../support/demo-app.js';
import { getJson } from '../support/http.js';
import { connect } from '../support/replay.js';
import type { ReplayClient } from '@msr/protocol';
import { gzipSync } from 'node:zlib';

// The viewer in a real browser (Debian's Chromium, driven by playwright-core): it shows the demo
// world with its activity strip, plays, seeks, plays until a typed time, inspects a clicked entity,
// opens a shared link at the same state and goes live. Screenshots are kept in test-artifacts/.

// Defined in each page by playerPage(): the player's elements live in its shadow root.
declare const msr: (id: string) => HTMLElement | null;
declare const msrAll: (selector: string) => NodeListOf<Element>;
const log = createLogger('silent');

describe.skipIf(!chromiumAvailable && !process.env.CI)('the viewer page', () => {
  let db: TestDatabase;
  let app: App;
  let browser: Browser;

  beforeAll(async () => {
    ({ db, app } = await startDemoApp(12, log));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await db?.drop();
  });

  /** A page where `msr(id)` finds an element of the <msr-player> (in its shadow root) by id. */
  const playerPage = async () => {
    const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
    await page.addInitScript(() => {
      const root = () => document.querySelector('msr-player')?.shadowRoot;
      // Main-thread tasks over 50 ms, for the report: the page must stay responsive while a keyframe arrives.
      const longTasks: number[] = [];
      new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration))).observe(
        {
          type: 'longtask',
          buffered: true,
        },
      );
      Object.assign(window, {
        longTasks,
        msr: (id: string) => root()?.getElementById(id) ?? document.getElementById(id),
        msrAll: (selector: string) =>
          root()?.querySelectorAll(selector) ?? document.querySelectorAll(selector),
      });
    });
    return page;
  };

  it('draws the demo city, plays, seeks, plays until a typed time, inspects an entity, opens a shared link and goes live', async () => {
    const page = await playerPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    await page
      .waitForFunction(() => Number(msr('count')!.textContent) > 1000, undefined, {
        timeout: 20_000,
      })
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; status: ${await page.textContent('#status')}; page errors: ${problems.join(' | ')}`,
        );
      });
    expect(await page.textContent('#status')).toBe('connected');
    const longest = await page.evaluate(() =>
      Math.max(0, ...(window as unknown as { longTasks: number[] }).longTasks),
    );
    console.log(
      `viewer: longest main-thread task while the first keyframe came in: ${Math.round(longest)} ms`,
    );
    const timeAt = async () => Date.parse(`${(await page.textContent('#time'))!.replace(' ', 'T')}Z`);
    /** Releases the timeline at t and waits for the page to show it (the input snaps to 1 s steps). */
    const scrubTo = async (target: number) => {
      await page.$eval(
        '#timeline',
        (el, t) => {
          const input = el as HTMLInputElement;
          input.value = String(t);
          input.dispatchEvent(new Event('change'));
        },
        target,
      );
      await page.waitForFunction((t) => {
        const text = msr('time')!.textContent!;
        return Math.abs(Date.parse(`${text.replace(' ', 'T')}Z`) - t) < 1000;
      }, target);
    };

    // Seek 15 minutes back through the timeline, then play at 600x.
    const target = Date.now() - 15 * 60_000;
    const scrubbed = Date.now();
    await scrubTo(target);
    console.log(`viewer: scrub release to the new time drawn in ${Date.now() - scrubbed} ms`);
    await page.selectOption('#speed-choice', '600');
    await page.click('#play');
    await page.waitForFunction(() => msr('play')!.textContent === 'Pause');
    await page.waitForTimeout(1_500);
    const played = await timeAt();
    expect(played - target).toBeGreaterThan(60_000);
    expect(await page.textContent('#achieved')).toMatch(/×$/);

    // Play until a typed time: it stops there, showing the state the server has for that time.
    await page.click('#play');
    await page.waitForFunction(() => msr('play')!.textContent === 'Play');
    // From ten minutes back (the 600x play above ran into the live edge).
    const from = Math.round((Date.now() - 10 * 60_000) / 1000) * 1000;
    await scrubTo(from);
    const until = Math.ceil((await timeAt()) / 1000) * 1000 + 90_000;
    await page.fill('#until', new Date(until).toISOString().slice(11, 19));
    await page.click('#play-until');
    await page
      .waitForFunction(
        (t) => {
          const text = msr('time')!.textContent!;
          return msr('play')!.textContent === 'Play' && Date.parse(`${text.replace(' ', 'T')}Z`) === t;
        },
        until,
        { timeout: 20_000 },
      )
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; until ${until}; status: ${await page.textContent('#status')}; time: ${await page.textContent('#time')}; ${await page.textContent('#play')}`,
        );
      });
    const atUntil = await getJson(app.port, `/api/v1/state?t=${until}`);
    expect(Number(await page.textContent('#count'))).toBe(atUntil.body.entities.length);

    // Keys: an arrow steps 10 s back, + picks the next speed.
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction(
      (t) => Date.parse(`${msr('time')!.textContent!.replace(' ', 'T')}Z`) === t,
      until - 10_000,
    );
    const speedBefore = await page.$eval('#speed-choice', (el) => (el as HTMLSelectElement).selectedIndex);
    await page.keyboard.press('+');
    expect(await page.$eval('#speed-choice', (el) => (el as HTMLSelectElement).selectedIndex)).toBe(
      speedBefore + 1,
    );
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(
      (t) => Date.parse(`${msr('time')!.textContent!.replace(' ', 'T')}Z`) === t,
      until,
    );

    // The activity strip has bars.
    const painted = await page.$eval('#activity', (el) => {
      const c = el as HTMLCanvasElement;
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n;
    });
    expect(painted).toBeGreaterThan(100);

    // Click a drawn entity: the inspector shows it and its changes around the replay time.
    const spot = await page.$eval('#map', (el) => {
      const c = el as HTMLCanvasElement;
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const box = c.getBoundingClientRect();
      for (let i = 3; i < data.length; i += 4) {
        if (data[i] === 255) {
          const p = (i - 3) / 4;
          return {
            x: box.left + ((p % c.width) + 0.5) * (box.width / c.width),
            y: box.top + (Math.floor(p / c.width) + 0.5) * (box.height / c.height),
          };
        }
      }
      return undefined;
    });
    expect(spot).toBeDefined();
    await page.mouse.click(spot!.x, spot!.y);
    await page.waitForFunction(() => msrAll('#entity-history li').length > 0, undefined, {
      timeout: 10_000,
    });
    const inspected = (await page.textContent('#entity-name'))!;
    expect(inspected).toMatch(/^city\.(vehicle|incident) \S+$/);
    expect(JSON.parse((await page.textContent('#entity-state'))!)).toEqual(
      atUntil.body.entities.find((e: { table: string; id: string }) => `${e.table} ${e.id}` === inspected)
        .state,
    );

    // The link opens a new page at the same time, with the same entity inspected.
    await page.click('#share');
    const link = page.url();
    expect(new URL(link).searchParams.get('t')).toBe(String(until));
    const shared = await playerPage();
    shared.on('pageerror', (err) => problems.push(err.message));
    await shared.goto(link);
    // The keyframe comes in parts: wait for the whole of it (the count the server gives at that time).
    await shared
      .waitForFunction(
        ([t, count]) => {
          const text = msr('time')!.textContent!;
          return (
            Date.parse(`${text.replace(' ', 'T')}Z`) === t && Number(msr('count')!.textContent) === count
          );
        },
        [until, atUntil.body.entities.length],
        { timeout: 20_000 },
      )
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; want ${atUntil.body.entities.length} entities at ${until}; shows ${await shared.textContent('#count')} at ${await shared.textContent('#time')}`,
        );
      });
    await shared.waitForFunction((name) => msr('entity-name')!.textContent === name, inspected);
    await mkdir('test-artifacts', { recursive: true });
    await shared.screenshot({ path: 'test-artifacts/viewer-shared.png' });
    await shared.close();

    // Live: back to the present at 1x.
    await page.click('#live');
    await page.waitForFunction(() => {
      const text = msr('time')!.textContent!;
      return Date.now() - Date.parse(`${text.replace(' ', 'T')}Z`) < 10_000;
    });
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/viewer.png' });
    expect(problems).toEqual([]);
  });

  it('runs a reverse speed, filters tables, loops a range, keeps bookmarks, and says when every session is taken', async () => {
    const page = await playerPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    await page.waitForFunction(() => Number(msr('count')!.textContent) > 1000, undefined, {
      timeout: 20_000,
    });
    const timeAt = async () => Date.parse(`${(await page.textContent('#time'))!.replace(' ', 'T')}Z`);
    const waitTime = (t: number) =>
      page.waitForFunction(
        (want) => Date.parse(`${msr('time')!.textContent!.replace(' ', 'T')}Z`) === want,
        t,
      );

    // Every control has a name a screen reader can say.
    const unnamed = await page.evaluate(() =>
      [...document.querySelector('msr-player')!.shadowRoot!.querySelectorAll('button, select, input')]
        .filter((el) => {
          const label =
            el.closest('label')?.textContent?.trim() ||
            el.getAttribute('aria-label') ||
            el.textContent?.trim();
          return !label;
        })
        .map((el) => el.id),
    );
    expect(unnamed).toEqual([]);

    // Go to a typed time, then play backwards at 60x: the time goes down.
    const start = Math.round((Date.now() - 8 * 60_000) / 1000) * 1000;
    await page.fill('#goto', new Date(start).toISOString().slice(11, 19));
    await page.click('#go');
    await waitTime(start);
    await page.selectOption('#speed-choice', '-60');
    await page.click('#play');
    await page.waitForFunction(
      (t) => Date.parse(`${msr('time')!.textContent!.replace(' ', 'T')}Z`) < t - 30_000,
      start,
    );
    await page.click('#play');
    await page.waitForFunction(() => msr('play')!.textContent === 'Play');
    const reversed = await timeAt();
    const atReversed = await getJson(app.port, `/api/v1/state?t=${reversed}`);
    await page.waitForFunction(
      (n) => Number(msr('count')!.textContent) === n,
      atReversed.body.entities.length,
    );

    // Only the vehicles: the session opens again on that table, at the same time.
    await page.waitForFunction(() => msrAll('#tables input').length >= 2);
    await page.click('#tables input[value="city.incident"]');
    const vehicles = await getJson(app.port, `/api/v1/state?t=${reversed}&tables=city.vehicle`);
    await page
      .waitForFunction((n) => Number(msr('count')!.textContent) === n, vehicles.body.entities.length, {
        timeout: 15_000,
      })
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; shows ${await page.textContent('#count')}, want ${vehicles.body.entities.length}`,
        );
      });
    expect(vehicles.body.entities.length).toBeLessThan(atReversed.body.entities.length);
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/player-vehicles-only.png' });

    // Loop a minute at 60x: after its end the time is back near its start, playing on.
    await page.selectOption('#speed-choice', '60');
    await page.click('#mark-in');
    // Typed times are whole seconds.
    const loopEnd = Math.ceil((reversed + 60_000) / 1000) * 1000;
    await page.fill('#goto', new Date(loopEnd).toISOString().slice(11, 19));
    await page.click('#go');
    await waitTime(loopEnd);
    await page.click('#mark-out');
    await page.check('#loop');
    await page.click('#play');
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      seen.push(await timeAt());
      await page.waitForTimeout(100);
    }
    const wrapped = seen.some((t, i) => i > 0 && t < seen[i - 1]! - 20_000);
    expect(wrapped, `times seen: ${seen.join(',')}`).toBe(true);
    expect(seen.every((t) => t >= reversed && t <= loopEnd)).toBe(true);
    await page.uncheck('#loop');
    await page.click('#play');
    await page.waitForFunction(() => msr('play')!.textContent === 'Play');

    // A bookmark outlives the page, and opens its time.
    const marked = await timeAt();
    await page.click('#bookmark');
    await page.reload();
    await page.waitForFunction(() => Number(msr('count')!.textContent) > 0, undefined, { timeout: 20_000 });
    await page.waitForFunction(() => msrAll('#bookmarks li').length === 1);
    await page.click('#bookmarks li button');
    await waitTime(marked);

    // The component alone, for other pages: small.
    const bundle = await fetch(`http://127.0.0.1:${app.port}/msr-player.js`);
    const gzipped = gzipSync(Buffer.from(await bundle.arrayBuffer())).length;
    console.log(`viewer: /msr-player.js is ${Math.round(gzipped / 1024)} KB gzipped`);
    expect(gzipped).toBeLessThanOrEqual(50 * 1024);
    await page.close();

    // The README's embedding example, as written but for the server's address, on a page of that origin.
    const origin = `http://127.0.0.1:${app.port}`;
    const readme = await readFile('README.md', 'utf8');
    const example = /```html\n([\s\S]*?)```/.exec(readme)![1]!.replaceAll('https://msr.example.com', origin);
    const embedding = await playerPage();
    const logged: string[] = [];
    embedding.on('console', (m) => logged.push(m.text()));
    await embedding.route(`${origin}/embed.html`, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><html><body>${example}</body></html>`,
      }),
    );
    await embedding.goto(`${origin}/embed.html`);
    const embedProblems: string[] = [];
    embedding.on('pageerror', (err) => embedProblems.push(err.message));
    await embedding
      .waitForFunction(() => Number(msr('count')!.textContent) > 0, undefined, { timeout: 20_000 })
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; status: ${await embedding.textContent('#status').catch(() => '(none)')}; ${embedProblems.join(' | ')}; ${logged.join(' | ')}`,
        );
      });
    expect(await embedding.textContent('#speed')).toBe('8×');
    expect(logged.some((line) => /^\d+ \d+$/.test(line))).toBe(true);
    await embedding.close();

    // Every session taken: the player says so, and its Retry opens one once a slot is free.
    const holders: ReplayClient[] = [];
    try {
      for (;;) {
        const c = await connect(app.port);
        holders.push(c);
        const opened = await c
          .open({ from: Date.now() - 60_000, to: Date.now(), at: Date.now() - 30_000 })
          .catch((err: Error) => err);
        if (opened instanceof Error) {
          expect(opened.message).toMatch(/^SESSION_LIMIT/);
          break;
        }
      }
      const blocked = await playerPage();
      await blocked.goto(`http://127.0.0.1:${app.port}/`);
      await blocked.waitForFunction(() =>
        msr('status')!.textContent!.includes('all replay sessions are in use'),
      );
      expect(await blocked.isVisible('#retry')).toBe(true);
      await holders[0]!.close();
      await blocked.click('#retry');
      await blocked.waitForFunction(() => msr('status')!.textContent === 'connected', undefined, {
        timeout: 15_000,
      });
      await blocked.close();
    } finally {
      for (const c of holders) c.disconnect();
    }
    expect(problems).toEqual([]);
  });
});
