import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/logger.js';
import { demoLive } from '../support/wait.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// The viewer in a real browser (Debian's Chromium, driven by playwright-core): it shows the demo
// world, plays, seeks and goes live. A screenshot is kept in test-artifacts/.

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

  it('draws the demo city, plays, seeks and goes live', async () => {
    const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`http://127.0.0.1:${app.port}/`);
    await page.waitForFunction(
      () => Number(document.getElementById('count')!.textContent) > 1000,
      undefined,
      {
        timeout: 20_000,
      },
    );
    expect(await page.textContent('#status')).toBe('connected');
    const timeAt = async () => Date.parse(`${(await page.textContent('#time'))!.replace(' ', 'T')}Z`);

    // Seek 15 minutes back through the timeline, then play at 600x.
    const target = Date.now() - 15 * 60_000;
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
    await page.selectOption('#speed-choice', '600');
    await page.click('#play');
    await page.waitForFunction(() => document.getElementById('play')!.textContent === 'Pause');
    await page.waitForTimeout(1_500);
    const played = await timeAt();
    expect(played - target).toBeGreaterThan(60_000);
    expect(await page.textContent('#achieved')).toMatch(/×$/);

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
