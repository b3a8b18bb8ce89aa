import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { demoLive } from '../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { getJson } from '../support/http.js';

// The viewer in a real browser (Debian's Chromium, driven by playwright-core): it shows the demo
// world with its activity strip, plays, seeks, plays until a typed time, inspects a clicked entity,
// opens a shared link at the same state and goes live. Screenshots are kept in test-artifacts/.

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
const log = createLogger('silent');

describe.skipIf(!available && !process.env.CI)('the viewer page', () => {
  let db: TestDatabase;
  let app: App;
  let browser: Browser;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createApp(
      loadConfig({ DATABASE_URL: db.url, AUTH_MODE: 'none', PORT: '0', DEMO: 'true', DB_POOL_SIZE: '4' }),
      {
        log,
        demoHistoryMs: 20 * 60_000,
      },
    );
    await demoLive(app);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await db?.drop();
  });

  it('draws the demo city, plays, seeks, plays until a typed time, inspects an entity, opens a shared link and goes live', async () => {
    const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    await page
      .waitForFunction(() => Number(document.getElementById('count')!.textContent) > 1000, undefined, {
        timeout: 20_000,
      })
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; status: ${await page.textContent('#status')}; page errors: ${problems.join(' | ')}`,
        );
      });
    expect(await page.textContent('#status')).toBe('connected');
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
        const text = document.getElementById('time')!.textContent!;
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
    await page.waitForFunction(() => document.getElementById('play')!.textContent === 'Pause');
    await page.waitForTimeout(1_500);
    const played = await timeAt();
    expect(played - target).toBeGreaterThan(60_000);
    expect(await page.textContent('#achieved')).toMatch(/×$/);

    // Play until a typed time: it stops there, showing the state the server has for that time.
    await page.click('#play');
    await page.waitForFunction(() => document.getElementById('play')!.textContent === 'Play');
    // From ten minutes back (the 600x play above ran into the live edge).
    const from = Math.round((Date.now() - 10 * 60_000) / 1000) * 1000;
    await scrubTo(from);
    const until = Math.ceil((await timeAt()) / 1000) * 1000 + 90_000;
    await page.fill('#until', new Date(until).toISOString().slice(11, 19));
    await page.click('#play-until');
    await page
      .waitForFunction(
        (t) => {
          const text = document.getElementById('time')!.textContent!;
          return (
            document.getElementById('play')!.textContent === 'Play' &&
            Date.parse(`${text.replace(' ', 'T')}Z`) === t
          );
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
      (t) => Date.parse(`${document.getElementById('time')!.textContent!.replace(' ', 'T')}Z`) === t,
      until - 10_000,
    );
    const speedBefore = await page.$eval('#speed-choice', (el) => (el as HTMLSelectElement).selectedIndex);
    await page.keyboard.press('+');
    expect(await page.$eval('#speed-choice', (el) => (el as HTMLSelectElement).selectedIndex)).toBe(
      speedBefore + 1,
    );
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(
      (t) => Date.parse(`${document.getElementById('time')!.textContent!.replace(' ', 'T')}Z`) === t,
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
    await page.waitForFunction(() => document.querySelectorAll('#entity-history li').length > 0, undefined, {
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
    const shared = await browser.newPage({ viewport: { width: 1300, height: 800 } });
    shared.on('pageerror', (err) => problems.push(err.message));
    await shared.goto(link);
    // The keyframe comes in parts: wait for the whole of it (the count the server gives at that time).
    await shared
      .waitForFunction(
        ([t, count]) => {
          const text = document.getElementById('time')!.textContent!;
          return (
            Date.parse(`${text.replace(' ', 'T')}Z`) === t &&
            Number(document.getElementById('count')!.textContent) === count
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
    await shared.waitForFunction(
      (name) => document.getElementById('entity-name')!.textContent === name,
      inspected,
    );
    await mkdir('test-artifacts', { recursive: true });
    await shared.screenshot({ path: 'test-artifacts/viewer-shared.png' });
    await shared.close();

    // Live: back to the present at 1x.
    await page.click('#live');
    await page.waitForFunction(() => {
      const text = document.getElementById('time')!.textContent!;
      return Date.now() - Date.parse(`${text.replace(' ', 'T')}Z`) < 10_000;
    });
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/viewer.png' });
    expect(problems).toEqual([]);
  });
});
