import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium, which scripts/ensure-test-tools.sh installs; playwright-core drives it. */
export const CHROMIUM = '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM);

/** A headless Chromium for tests: no sandbox (root), no network beyond what the page asks for. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
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
      // A page the test serves by route (the README's embedding example) counts as a public
      // origin to Chromium's local-network checks, which would block its socket to 127.0.0.1.
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
}
