/**
 * docs/dashboard.png: the live status page of a service that has lived a
 * little (requests, config versions, one rejected, a reload), taken in
 * headless Chromium. `npm run docs:dashboard`; needs /usr/bin/chromium
 * (scripts/test-tools.sh installs it).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { runMain, tempDir } from '../bench/lib/cleanup.js';
import { graftCli } from '../bench/lib/graft.js';
import { freePort, getFresh } from '../bench/lib/http.js';
import { log } from '../bench/lib/log.js';
import { root, tsxImport } from '../bench/lib/paths.js';
import { Proc, runCommand } from '../bench/lib/proc.js';

const output = join(root, 'docs/dashboard.png');

async function main(): Promise<void> {
  const dir = tempDir('graft-docs-');
  const socket = join(dir, 'control.sock');
  const configFile = join(dir, 'checkout.yaml');
  writeFileSync(configFile, 'greeting: hello\ndb:\n  pool: 5\n');
  const [appPort, statusPort] = [await freePort(), await freePort()];
  const graft = new Proc(
    ['--import', tsxImport, graftCli, 'start', 'examples/metrics/server.ts', '--name', 'checkout', '-w', '3', '-p', String(appPort), '--metrics', String(statusPort), '--config', configFile, '--socket', socket],
    { env: { ...process.env, GRAFT_LOG_FORMAT: 'json' } },
  );
  if (!(await graft.waitFor((l) => l.record?.msg === 'master running', 0, 60_000))) throw new Error(`graft did not start:\n${graft.tail()}`);
  const cli = async (...args: string[]) => {
    const r = await runCommand(['--import', tsxImport, graftCli, ...args, '--socket', socket], { timeoutMs: 60_000 });
    log(`graft ${args.join(' ')}: exit ${r.code}`);
    return r;
  };
  const traffic = async (n: number) => {
    for (let i = 0; i < n; i++) await getFresh(`http://127.0.0.1:${appPort}/`);
  };

  await traffic(120);
  await cli('config', 'apply', '--set', 'db.pool=10');
  await traffic(60);
  await cli('reload');
  await traffic(90);
  await cli('config', 'apply', '--set', 'greeting=welcome');
  await cli('config', 'apply', '--set', 'db.pool=0'); // rejected by the schema: the page shows why
  await traffic(45);

  const profile = tempDir('graft-chromium-');
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1360, height: 900 },
    deviceScaleFactor: 1,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${statusPort}/`);
    await page.locator('#generation', { hasText: /^2$/ }).waitFor({ timeout: 20_000 });
    await page.locator('#live', { hasText: /^live$/ }).waitFor({ timeout: 20_000 });
    await page.locator('#history tbody tr', { hasText: 'rejected' }).waitFor({ timeout: 20_000 });
    await page.screenshot({ path: output, fullPage: true });
    log(`wrote ${output}`);
  } finally {
    await browser.close();
  }
  await cli('stop');
}

void runMain(main);
