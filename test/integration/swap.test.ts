import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { SwapOutcome } from '../../src/master/code-swapper.js';
import { sendControl } from '../../src/control/client.js';
import { fixture, sharedGraft, startGraft, tempDir, waitFor, type GraftProcess } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

const get = async (url: string) => (await fetch(url)).text();

function handlerProject(version: string): { dir: string; write: (version: string, extra?: string) => void } {
  const dir = tempDir('swap-app-');
  const write = (v: string, extra = '') => {
    writeFileSync(join(dir, 'version.ts'), `export const version: string = ${JSON.stringify(v)};\n`);
    writeFileSync(
      join(dir, 'handler.ts'),
      `import type { IncomingMessage, ServerResponse } from 'node:http';
import { version } from './version.js';
${extra}
export default function handle(req: IncomingMessage, res: ServerResponse): void {
  const answer = () => res.end(version + ' ' + process.pid);
  if (req.url === '/held') void held('swap').then(answer);
  else setTimeout(answer, 1);
}
import { held } from ${JSON.stringify(fixture('held.ts'))};
`,
    );
  };
  write(version);
  return { dir, write };
}

async function pids(g: GraftProcess): Promise<number[]> {
  return (await g.status()).workers.map((w) => w.pid).sort();
}

/** The newest generation of a swappable module any worker runs (`handler.ts@7` → 7). */
async function moduleGeneration(g: GraftProcess): Promise<number> {
  const { workers } = (await g.status()) as unknown as { workers: Array<{ modules?: string[] }> };
  return Math.max(...workers.flatMap((w) => (w.modules ?? []).map((m) => Number(m.slice(m.lastIndexOf('@') + 1)))));
}

describe('graft start --swap: code changes apply in place', () => {
  /** One project under one two-worker master for the tests that need no process of their own (the 100 swaps run first). */
  const app = handlerProject('v0');
  const twoWorkers = sharedGraft(join(app.dir, 'handler.ts'), { workers: 2, args: ['--swap'], cwd: app.dir, env: { GRAFT_LOG_LEVEL: 'debug' } });

  test('100 swaps under load: no request fails, no new process, new requests see new code', async () => {
    const g = await twoWorkers();
    const before = await pids(g);
    const { load, failed } = await underLoad(g.url, async () => {
      for (let i = 1; i <= 100; i++) {
        app.write(`v${i}`);
        // Every tenth through the CLI, the others over the control socket it uses: a CLI process costs a
        // second of CPU, which the load and the workers need more.
        if (i % 10 === 0) {
          const r = await g.cli('swap');
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /swapped in place/);
        } else {
          const outcome = (await g.control({ cmd: 'swap' })) as SwapOutcome;
          assert.equal(outcome.mode, 'swap', `swap ${i} did not apply in place: ${JSON.stringify(outcome)}`);
        }
      }
    });
    assert.ok(load.answered > 100, `only ${load.answered} requests were answered`);
    assert.equal(failed, 0, JSON.stringify(load));
    assert.deepEqual(await pids(g), before, 'the same processes serve');
    for (let i = 0; i < 4; i++) assert.match(await get(g.url), /^v100 /);
    const status = await g.status();
    assert.equal(status.master.generation, 1, 'no worker reload happened');
  });

  test('a request in flight finishes on the old code; a broken generation is rejected and the old one keeps serving', async () => {
    const app = handlerProject('old');
    const g = await startGraft(join(app.dir, 'handler.ts'), { workers: 1, args: ['--swap'], cwd: app.dir });
    try {
      await g.waitRunning();
      const slow = get(`${g.url}/held`);
      await g.held('swap');
      app.write('new');
      assert.equal((await g.cli('swap')).code, 0);
      assert.match(await get(g.url), /^new /);
      g.release('swap');
      assert.match(await slow, /^old /, 'the in-flight request finished on its generation');
      // a syntax error
      writeFileSync(join(app.dir, 'version.ts'), 'export const version = ;\n');
      const broken = await g.cli('swap');
      assert.notEqual(broken.code, 0);
      assert.match(broken.stderr, /^graft: GRAFT_SWAP_LOAD: worker \d+ \(generation 1\) rejected the new generation: .*version\.ts:1:\d+/m);
      assert.match(await get(g.url), /^new /);
      // a throw at load
      app.write('thrower', 'throw new Error("cannot start this version");');
      const thrown = await g.cli('swap');
      assert.match(thrown.stderr, /handler\.ts:3:\d+: Error: cannot start this version/);
      assert.match(await get(g.url), /^new /);
    } finally {
      await g.stop();
    }
  });

  test('a retired generation a leftover timer keeps alive is named in a GRAFT_SWAP_LEAK warning, with the timer', async () => {
    const app = handlerProject('old');
    // Each generation starts an interval it never clears.
    app.write('leaky', 'setInterval(() => {}, 60_000);');
    const g = await startGraft(join(app.dir, 'handler.ts'), { workers: 1, args: ['--swap'], cwd: app.dir });
    try {
      await g.waitRunning();
      app.write('next');
      assert.equal((await g.cli('swap')).code, 0);
      const leak = await g.waitForLog((r) => r.code === 'GRAFT_SWAP_LEAK');
      assert.equal(leak.level, 'warn');
      assert.equal(leak.generation, 1, 'the retired generation');
      assert.match(String(leak.msg), /handler\.ts is still reachable after dispose/);
      assert.match((leak.timers as string[])[0]!, /^setInterval .*handler\.ts:3:\d+$/);
      assert.match(await get(g.url), /^next /, 'the service serves on');
    } finally {
      await g.stop();
    }
  });

  test('a generation one worker refuses goes live in none: every worker keeps its code, no reload', async () => {
    const app = handlerProject('old');
    const g = await startGraft(join(app.dir, 'handler.ts'), { workers: 2, args: ['--swap'], cwd: app.dir });
    try {
      await g.waitRunning();
      const before = await pids(g);
      const from = g.logs.length;
      // Worker 0 prepares the new generation; worker 1's self-check fails.
      app.write('half', 'export function verify(): boolean { return process.env.GRAFT_WORKER_INDEX !== "1"; }');
      const r = await g.cli('swap');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^graft: GRAFT_SWAP_VERIFY: worker \d+ \(generation 1\) rejected the new generation: .*verify\(\) returned false/m);
      for (let i = 0; i < 6; i++) assert.match(await get(g.url), /^old /, 'no worker runs the refused generation');
      assert.deepEqual(await pids(g), before, 'the same processes serve');
      assert.equal((await g.status()).master.generation, 1, 'no worker reload happened');
      assert.ok(!g.logs.slice(from).some((l) => l.msg === 'reload requested'), 'no repair reload');
      // The next swap that every worker takes goes live everywhere.
      app.write('whole');
      const ok = await g.cli('swap');
      assert.equal(ok.code, 0, ok.stderr);
      for (let i = 0; i < 6; i++) assert.match(await get(g.url), /^whole /);
    } finally {
      await g.stop();
    }
  });

  test('swap orders that arrive during a swap merge into one', async () => {
    const g = await twoWorkers();
    const before = await moduleGeneration(g);
    // The new code's self-check waits for the test, so the first order is still running while the others arrive.
    app.write('s1', `export async function verify(): Promise<boolean> { await held('swap-build'); return true; }`);
    const from = g.logs.length;
    const order = () => sendControl(g.socket, { cmd: 'swap' }) as Promise<SwapOutcome>;
    const first = order();
    await g.held('swap-build', 2);
    const later = Array.from({ length: 5 }, order);
    // The second queues behind the first; the other four merge into it.
    await g.waitForLog(() => g.logs.slice(from).filter((l) => l.msg === 'command merged into the one waiting').length >= 4);
    g.release('swap-build');
    const results = await Promise.all([first, ...later]);
    const generations = results.flatMap((r) => r.workers.flatMap((w) => w.modules.map((m) => m.generation)));
    assert.ok(Math.max(...generations) <= before + 2, `six orders during a swap after generation ${before} made generations ${[...new Set(generations)].join(', ')}`);
    assert.match(await get(g.url), /^s1 /);
  });

  test('a change a swap cannot take falls back to a worker reload, logged', async () => {
    const app = handlerProject('a');
    const g = await startGraft(join(app.dir, 'handler.ts'), { workers: 1, args: ['--swap', '--watch'], cwd: app.dir });
    try {
      await g.waitRunning();
      await g.waitForLog((l) => l.msg === 'watching for code changes');
      const before = await pids(g);
      // --watch swaps in place
      app.write('b');
      await waitFor(async () => (await get(g.url)).startsWith('b '), 10_000, 'the watched change to swap in');
      assert.deepEqual(await pids(g), before);
      // a module that declares itself not swappable
      app.write('c', 'export const swappable = false;');
      const record = await g.waitForLog((l) => l.msg === 'swap cannot apply in place; falling back to a worker reload', 10_000);
      assert.match(String(record.reason), /not swappable/);
      await waitFor(async () => (await get(g.url)).startsWith('c '), 15_000, 'the reloaded workers to serve');
      assert.notDeepEqual(await pids(g), before, 'new processes serve');
      // a package change
      const from = g.logs.length;
      writeFileSync(join(app.dir, 'package.json'), '{"name":"swap-app","version":"1.0.1"}\n');
      const pkg = await g.waitForLog((l) => l.msg === 'swap cannot apply in place; falling back to a worker reload', 10_000, from);
      assert.match(String(pkg.reason), /package\.json changed/);
    } finally {
      await g.stop();
    }
  });
});

describe('graft swap without swappable modules', () => {
  test('is refused with a clear error, and the service keeps serving', async () => {
    const app = handlerProject('plain');
    // Not --swap: handler.ts is not a listening app, so serve a fixture that listens.
    const { fixture } = await import('../helpers/graft.js');
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1, cwd: app.dir });
    try {
      await g.waitRunning();
      const r = await g.cli('swap');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^graft: GRAFT_SWAP_NOT_SWAPPABLE: no worker has a swappable module: start graft with --swap/m);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });
});
