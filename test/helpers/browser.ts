import { rmSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';
import { tempDir } from './output.js';

/** Debian's chromium package (scripts/test-tools.sh installs it). */
export const chromiumPath = '/usr/bin/chromium';

/**
 * Headless Chromium with a fresh profile in a temporary folder, removed at
 * close. Nothing of the machine's own profile, no background traffic.
 */
export async function openBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = tempDir('graft-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
