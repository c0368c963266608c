import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { openBrowser } from '../helpers/browser.js';
import { fixture, freePort, isAlive, startGraft, waitFor } from '../helpers/graft.js';

/** How long the page may take to show a change the master has already answered for. */
const SHOWN_MS = 20_000;

describe('live status page', () => {
  test('shows the generation and the workers, and follows a reload, config applies and a master upgrade without being reloaded', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}/`;
    const browser = await openBrowser();
    // Closed whatever happens next: a browser left open would keep the test file from ending.
    const g = await startGraft(fixture('metrics-app.ts'), { workers: 2, args: ['--dashboard', String(port), '--name', 'checkout'] }).catch(async (err: unknown) => {
      await browser.close();
      throw err;
    });
    let successor: number | undefined;
    try {
      await g.waitRunning();
      const page = await browser.context.newPage();
      const elsewhere: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(base)) elsewhere.push(r.url());
      });
      let loads = 0;
      page.on('load', () => loads++);
      await page.goto(base);
      assert.equal(await page.title(), 'graft · checkout');
      await page.locator('#live', { hasText: /^live$/ }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#generation', { hasText: /^1$/ }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#workers-count', { hasText: /^2 \/ 2$/ }).waitFor({ timeout: SHOWN_MS });
      const pids = (await g.status()).workers.map((w) => String(w.pid)).sort();
      const rows = page.locator('#workers tbody tr[data-generation="1"]');
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr[data-generation="1"]').length === 2, undefined, { timeout: SHOWN_MS });
      assert.deepEqual((await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-pid') ?? ''))).sort(), pids);
      await page.locator('#config-version', { hasText: /^v1$/ }).waitFor({ timeout: SHOWN_MS });

      const reload = await g.cli('reload');
      assert.equal(reload.code, 0, reload.stderr);
      await page.locator('#generation', { hasText: /^2$/ }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#reloads tbody tr', { hasText: 'control' }).filter({ hasText: '1 → 2' }).filter({ hasText: 'ok' }).waitFor({ timeout: SHOWN_MS });
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2 && document.querySelectorAll('#workers tbody tr[data-generation="2"]').length === 2, undefined, { timeout: SHOWN_MS });

      const apply = await g.cli('config', 'apply', '--set', 'greeting=hi');
      assert.equal(apply.code, 0, apply.stderr);
      await page.locator('#config-version', { hasText: /^v2$/ }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#history tbody tr', { hasText: 'v2' }).filter({ hasText: 'greeting' }).filter({ hasText: 'applied' }).waitFor({ timeout: SHOWN_MS });

      const rejected = await g.cli('config', 'apply', '--set', 'limit=0');
      assert.notEqual(rejected.code, 0);
      await page.locator('#history tbody tr', { hasText: 'v3' }).filter({ hasText: 'rejected' }).filter({ hasText: 'GRAFT_CONFIG_INVALID' }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#alerts', { hasText: 'Config v3 was rejected (GRAFT_CONFIG_INVALID): the live config stays v2' }).waitFor({ timeout: SHOWN_MS });
      assert.equal(await page.locator('#config-version').textContent(), 'v2');

      // graft upgrade: the open page's stream ends with the old master and reconnects to the successor, on the same socket.
      const first = (await g.status()).master.pid;
      const upgrade = await g.cli('upgrade');
      assert.equal(upgrade.code, 0, upgrade.stderr);
      successor = Number(/master (\d+) serves/.exec(upgrade.stdout)?.[1]);
      await g.masterExit(first);
      await page.locator('#master-sub', { hasText: `pid ${successor} ` }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#generation', { hasText: /^3$/ }).waitFor({ timeout: SHOWN_MS });
      await page.locator('#live', { hasText: /^live$/ }).waitFor({ timeout: SHOWN_MS });
      // What the old master saw is still there.
      await page.locator('#reloads tbody tr', { hasText: '1 → 2' }).waitFor({ timeout: SHOWN_MS });

      assert.equal(loads, 1, 'the page was never reloaded');
      assert.deepEqual(elsewhere, [], 'the page loads nothing from anywhere else');
    } finally {
      await browser.close();
      if (successor && isAlive(successor)) {
        await g.cli('stop');
        await waitFor(() => !isAlive(successor!), 15_000, 'the successor to stop');
      }
      await g.stop();
    }
  });

  test('with --metrics alone the page is served at / on the metrics port; the state is JSON at /api/status', async () => {
    const port = await freePort();
    const g = await startGraft(fixture('metrics-app.ts'), { workers: 1, args: ['--metrics', String(port), '--name', 'metrics-app'] });
    try {
      await g.waitRunning();
      const page = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.match(await page.text(), /<title>graft · metrics-app<\/title>/);
      const state = (await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()) as { status: { master: { pid: number; generation: number } }; service: string };
      assert.equal(state.service, 'metrics-app');
      assert.equal(state.status.master.pid, await g.firstMaster());
      assert.equal(state.status.master.generation, 1);
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 200);
      const post = await fetch(`http://127.0.0.1:${port}/api/status`, { method: 'POST' });
      assert.equal(post.status, 405, 'read-only');
      const status = await g.cli('status');
      assert.match(status.stdout, new RegExp(`^metrics http://127\\.0\\.0\\.1:${port}/metrics  status page http://127\\.0\\.0\\.1:${port}/$`, 'm'), 'graft status says where they are');
    } finally {
      await g.stop();
    }
  });

  test('a --dashboard port in use: one line naming it', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      const g = await startGraft(fixture('metrics-app.ts'), { workers: 1, args: ['--dashboard', String(port)] });
      assert.equal((await g.exited).code, 1);
      const lines = g.output.filter((l) => l.startsWith('graft: '));
      assert.deepEqual(lines.length, 1, g.output.join('\n'));
      assert.match(lines[0]!, new RegExp(`^graft: GRAFT_METRICS_PORT_IN_USE: --dashboard 127\\.0\\.0\\.1:${port}: port ${port} is already in use`));
    } finally {
      holder.close();
    }
  });
});
