import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import { sendControl } from '../../src/control/client.js';
import { fixture, onlyGeneration, sharedGraft, startGraft, tempDir, waitFor, type GraftProcess } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

/** Two slow-app workers for the tests below that need no process of their own. */
const slowApp = sharedGraft(fixture('slow-app.ts'), { workers: 2 });

describe('reload under keep-alive load', () => {
  test('10 reloads, 64 connections: no request fails and every worker moves on', async () => {
    const g = await slowApp();
    const last = (await g.status()).master.generation + 10;
    // Each reload, and the drain of the generation it replaced, happens under load.
    const { failed, load } = await underLoad(
      g.url,
      async () => {
        for (let i = 0; i < 10; i++) {
          const r = await g.cli('reload');
          assert.equal(r.code, 0, r.stderr);
        }
        await onlyGeneration(g, last);
      },
      { connections: 64 },
    );
    assert.ok(load.answered > 1000, `only ${load.answered} requests were answered`);
    assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
    const status = await g.status();
    assert.equal(status.master.generation, last);
    assert.deepEqual(
      status.workers.map((w) => [w.generation, w.state]),
      [
        [last, 'ready'],
        [last, 'ready'],
      ],
    );
  });
});

describe('a broken new version does not take the service down', () => {
  let g: GraftProcess;
  let modeFile: string;
  before(async () => {
    modeFile = join(tempDir(), 'mode');
    writeFileSync(modeFile, 'ok');
    g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile }, args: ['--timeout', '3'] });
    await g.waitRunning();
  });
  after(() => g.stop());

  for (const [mode, expected] of [
    ['throw', /GRAFT_BOOT_FAILED.*boom: the new version is broken/],
    ['exit', /GRAFT_WORKER_EXITED.*code 3/],
    ['never', /GRAFT_READY_TIMEOUT.*never started listening/],
  ] as const) {
    test(`new version that does "${mode}": reload fails with the reason, the old generation keeps serving`, async () => {
      const before = await g.status();
      const pids = before.workers.map((w) => w.pid).sort();
      writeFileSync(modeFile, mode);
      const { value: r, load: result, failed } = await underLoad(g.url, () => g.cli('reload'), { connections: 16 });
      writeFileSync(modeFile, 'ok');
      assert.notEqual(r.code, 0, 'graft reload must exit non-zero');
      assert.match(r.stderr, expected);
      assert.equal(r.stderr.trim().split('\n')[0]!.startsWith('graft: GRAFT_'), true, r.stderr);
      assert.equal(failed, 0, JSON.stringify(result));
      assert.ok(result.answered > 0);
      const after = await g.status();
      assert.equal(after.master.generation, before.master.generation);
      assert.deepEqual(after.workers.filter((w) => w.state === 'ready').map((w) => w.pid).sort(), pids);
      const body = await (await fetch(g.url)).text();
      assert.equal(body.split(' ')[0], String(before.master.generation));
    });
  }

  test('after the rejections, a good version reloads', async () => {
    const r = await g.cli('reload');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /generation \d+ serves/);
    const rejected = g.logs.filter((l) => l.msg.startsWith('reload: generation rejected'));
    assert.equal(rejected.length, 3);
    for (const rec of rejected) assert.equal(typeof rec.generation, 'number');
  });
});

describe('reloads that arrive during a reload coalesce', () => {
  test('five reload requests at once produce at most two new generations', async () => {
    const g = await slowApp();
    const before = (await g.status()).master.generation;
    // Five requests at once over the control socket (CLI processes would arrive one by one).
    const results = (await Promise.all([1, 2, 3, 4, 5].map(() => sendControl(g.socket, { cmd: 'reload' })))) as Array<{ generation: number }>;
    assert.ok(results.every((r) => r.generation >= before + 1));
    const status = await g.status();
    assert.ok(status.master.generation <= before + 2, `generation ${status.master.generation} after ${before}: reloads were not coalesced`);
    assert.ok(status.master.generation >= before + 1);
  });
});

describe('reload with a new connection per request', () => {
  test('no request hangs or fails while workers retire (every connection handoff is answered)', async () => {
    const http = await import('node:http');
    const g = await slowApp();
    const last = (await g.status()).master.generation + 8;
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const one = () =>
      new Promise<void>((resolve) => {
        const req = http.get(`${g.url}/`, { agent: false, timeout: 3000 }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        });
        req.on('timeout', () => {
          failures.push('hung for 3 s');
          req.destroy();
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (!failures.at(-1)?.startsWith('hung')) failures.push(err.code ?? err.message);
          resolve();
        });
      });
    const clients = Array.from({ length: 8 }, async () => {
      while (running) await one();
    });
    try {
      for (let i = 0; i < 8; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
      }
      // The clients keep going until every retired generation has drained and exited.
      await onlyGeneration(g, last);
    } finally {
      running = false;
      await Promise.all(clients);
    }
    assert.ok(ok > 100, `only ${ok} requests`);
    assert.deepEqual(failures, []);
  });
});

describe('the readiness gate', () => {
  test('a defineService worker takes no connection before its ready() resolves', async () => {
    const g = await startGraft(fixture('gated-service.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const seen = new Set<string>();
      let running = true;
      // A fresh connection per request: node:cluster hands each new connection to a listening worker, so one
      // that listened before its ready() resolved would be reached (a keep-alive connection would stay on generation 1).
      const poll = (async () => {
        while (running) seen.add((await getFresh(g.url)).body);
      })();
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      // The reload is answered once new connections reach generation 2; poll until one has.
      await waitFor(() => seen.has('2 ready'), 15_000, 'generation 2 to answer');
      running = false;
      await poll;
      assert.ok(!seen.has('2 not ready'), `generation 2 served before ready(): ${[...seen].join(', ')}`);
      assert.ok(seen.has('2 ready'));
    } finally {
      await g.stop();
    }
  });
});

describe('commit is atomic for new connections', () => {
  test('once graft reload answers, every new connection reaches the new generation', async () => {
    const g = await slowApp();
    const get = async () => (await getFresh(`${g.url}/`)).body.trim();
    const first = (await g.status()).master.generation + 1;
    const stale: string[] = [];
    for (let round = first; round < first + 5; round++) {
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      for (let i = 0; i < 12; i++) {
        const body = await get();
        if (body !== String(round)) stale.push(`after reload to ${round}: ${body}`);
      }
    }
    assert.deepEqual(stale, []);
  });
});
