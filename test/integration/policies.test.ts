import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, graftCli, isAlive, startGraft, tempDir, waitFor, type LogRecord } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

const MB = 1048576;

function modeFile(mode = 'ok'): string {
  const file = join(tempDir(), 'mode');
  writeFileSync(file, mode);
  return file;
}

const at = (r: LogRecord) => Date.parse(r.time as string);

describe('--max-memory', () => {
  test('a worker that stays over the limit is replaced by a fresh one of its generation, then drains: no request fails', async () => {
    const g = await startGraft(fixture('memory-app.ts'), { workers: 2, args: ['--max-memory', '200M'] });
    try {
      await g.waitRunning();
      const before = await g.status();
      const { value, failed, load } = await underLoad(
        g.url,
        async () => {
          // The request lands on one worker, which keeps 250 MB from then on.
          const [, pid] = (await (await fetch(`${g.url}/grow?mb=250`)).text()).trim().split(' ');
          const grown = Number(pid);
          const over = await g.waitForLog((l) => l.msg === 'worker over --max-memory; replacing it once a fresh one is ready' && l.workerPid === grown, 30_000);
          const replaced = await g.waitForLog((l) => l.msg === 'worker over --max-memory replaced; draining it' && l.workerPid === grown, 30_000);
          await g.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === grown, 30_000);
          return { grown, over, replaced };
        },
        { connections: 32 },
      );
      assert.ok(load.answered > 100, `only ${load.answered} requests were answered`);
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      const { grown, over, replaced } = value;
      assert.equal(over.code, 'GRAFT_WORKER_MEMORY');
      assert.equal(over.generation, 1);
      assert.equal(over.limit, 200 * MB);
      assert.ok((over.rss as number) > 200 * MB, `rss ${over.rss as number}`);
      assert.equal(over.delayMs, 0, 'the first worker over the limit is replaced at once');
      const grownWorker = before.workers.find((w) => w.pid === grown)!;
      const after = await g.status();
      assert.equal(after.master.generation, before.master.generation, 'no reload: the same generation');
      const fresh = after.workers.find((w) => w.index === grownWorker.index)!;
      assert.equal(fresh.pid, replaced.replacementPid);
      assert.notEqual(fresh.pid, grown);
      assert.equal(fresh.generation, before.master.generation);
      assert.equal(fresh.state, 'ready');
      assert.ok(fresh.rss < 200 * MB);
      // The fresh worker was ready before the old one began to drain.
      const ready = g.logs.find((l) => l.msg === 'worker ready' && l.workerPid === fresh.pid)!;
      const draining = g.logs.findIndex((l) => l === replaced);
      assert.ok(g.logs.indexOf(ready) < draining);
      assert.ok(!isAlive(grown));
      assert.deepEqual(after.master.degraded, []);
      assert.equal(after.workers.length, 2);
      // The other worker was never touched.
      const other = before.workers.find((w) => w.pid !== grown)!;
      assert.ok(after.workers.some((w) => w.pid === other.pid));
    } finally {
      await g.stop();
    }
  });

  test('if the fresh worker fails to start, the one over the limit keeps serving, and is replaced once fresh ones start again', async () => {
    const broken = join(tempDir(), 'broken');
    const g = await startGraft(fixture('memory-app.ts'), { workers: 2, env: { BROKEN_FILE: broken }, args: ['--max-memory', '200M'] });
    try {
      await g.waitRunning();
      writeFileSync(broken, 'x');
      const { value: grown, failed, load } = await underLoad(
        g.url,
        async () => {
          const grown = Number((await (await fetch(`${g.url}/grow?mb=250`)).text()).trim().split(' ')[1]);
          const failure = await g.waitForLog((l) => l.msg === 'the replacement of a worker over --max-memory failed to start; the worker keeps serving' && l.workerPid === grown, 30_000);
          assert.equal(failure.code, 'GRAFT_BOOT_FAILED');
          assert.ok((failure.retryInMs as number) > 0);
          const s = await g.status();
          assert.ok(s.workers.some((w) => w.pid === grown && w.state === 'ready'), 'the worker over the limit still serves');
          assert.equal(s.workers.filter((w) => w.state === 'ready').length, 2);
          // The fix lands on disk: the next attempt starts a fresh worker.
          rmSync(broken);
          await g.waitForLog((l) => l.msg === 'worker over --max-memory replaced; draining it' && l.workerPid === grown, 60_000);
          await g.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === grown, 30_000);
          return grown;
        },
        { connections: 16 },
      );
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      const s = await g.status();
      assert.equal(s.master.generation, 1);
      assert.ok(!s.workers.some((w) => w.pid === grown));
      assert.equal(s.workers.filter((w) => w.state === 'ready').length, 2);
      // A fresh worker that did not start is reported once, as above: not as a crash to replace.
      assert.equal(g.logs.filter((l) => l.msg === 'worker died; replacing it').length, 0);
    } finally {
      await g.stop();
    }
  });

  test('fresh workers that keep going over the limit right away are not churned: replacements back off and status says so', async () => {
    const g = await startGraft(fixture('memory-app.ts'), { workers: 1, env: { BOOT_MB: '150' }, args: ['--max-memory', '100'] });
    try {
      await g.waitRunning();
      const churn = await g.waitForLog((l) => l.code === 'GRAFT_WORKER_MEMORY' && l.level === 'error', 30_000);
      assert.match(churn.msg, /fresh workers keep going over --max-memory right away: replacements back off; raise --max-memory/);
      assert.match(churn.error as string, /fresh workers of generation 1 keep going over --max-memory 100 MB right away \(rss \d+ MB within \d+ s of starting\)/);
      assert.equal(churn.generation, 1);
      assert.equal(churn.limit, 100 * MB);
      const status = await waitFor(async () => {
        const s = await g.status();
        return s.master.degraded.length ? s : undefined;
      }, 10_000, 'status to say so');
      assert.equal(status.master.degraded[0]!.code, 'GRAFT_WORKER_MEMORY');
      const plain = await g.cli('status');
      assert.match(plain.stdout, /DEGRADED since .* \(GRAFT_WORKER_MEMORY\)/);
      assert.match(plain.stdout, /restart policy: --max-memory 100\.0 MB/);
      // The first worker over is replaced at once; its fresh replacements wait longer and longer.
      const asked = () => g.logs.filter((l) => l.msg === 'worker over --max-memory; replacing it once a fresh one is ready');
      await waitFor(() => asked().length >= 3, 60_000, 'a third replacement');
      const delays = asked().map((l) => l.delayMs as number);
      assert.equal(delays[0], 0);
      assert.ok(delays[1]! >= 500, `delays ${delays.join(', ')}`);
      assert.ok(delays[2]! >= delays[1]!, `delays ${delays.join(', ')}`);
      assert.ok(new Set(asked().map((l) => l.workerPid)).size === 3, 'a fresh worker each time');
      // Said once, not at every replacement.
      assert.equal(g.logs.filter((l) => l.code === 'GRAFT_WORKER_MEMORY' && l.level === 'error').length, 1);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });
});

describe('--max-restarts', () => {
  test('after N unstable restarts the generation stops replacing crashed workers, status is degraded; a reload clears it', async () => {
    const mode = modeFile();
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: mode }, args: ['--max-restarts', '2', '--min-uptime', '1m'] });
    try {
      await g.waitRunning();
      const before = await g.status();
      // From now on a new worker exits at boot: one crash leads to a crash loop.
      writeFileSync(mode, 'exit');
      await fetch(`${g.url}/crash`).catch(() => undefined);
      const exhausted = await g.waitForLog((l) => l.code === 'GRAFT_MAX_RESTARTS', 30_000);
      assert.equal(exhausted.level, 'error');
      assert.equal(exhausted.generation, before.master.generation);
      assert.match(exhausted.msg, /--max-restarts used up: crashed workers of this generation are no longer replaced; fix the app and run graft reload/);
      assert.match(exhausted.error as string, /workers of generation 1 crashed 3 times in a row .*\(last error: exit code 3 before it was ready\)/);
      assert.equal(exhausted.workersLeft, 1);
      const died = g.logs.filter((l) => l.msg === 'worker died; replacing it');
      assert.equal(died.length, 2, 'two crashes replaced');
      const restarted = g.logs.filter((l) => l.msg === 'worker started' && (l.restarts as number) > 0);
      assert.deepEqual(restarted.map((l) => l.restarts), [1, 2]);
      // The master keeps running and serving with the worker it has.
      const s = await g.status();
      assert.equal(s.master.state, 'running');
      assert.equal(s.master.actual, 1);
      assert.equal(s.master.desired, 2);
      assert.deepEqual(s.master.degraded.map((d) => [d.code, d.generation]), [['GRAFT_MAX_RESTARTS', before.master.generation]]);
      const plain = await g.cli('status');
      assert.match(plain.stdout, /running DEGRADED/);
      assert.match(plain.stdout, /DEGRADED since .* \(GRAFT_MAX_RESTARTS\): workers of generation 1 crashed 3 times/);
      for (let i = 0; i < 5; i++) assert.equal((await fetch(g.url)).status, 200);
      assert.ok(isAlive(g.pid));
      assert.equal(g.logs.filter((l) => l.msg === 'worker started' && (l.restarts as number) > 0).length, 2, 'no replacement after the limit');
      assert.equal(g.logs.filter((l) => l.code === 'GRAFT_MAX_RESTARTS').length, 1, 'one error');

      // The fix is deployed: a reload brings a new generation, healthy again.
      writeFileSync(mode, 'ok');
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      const healed = await waitFor(async () => {
        const st = await g.status();
        return st.workers.length === 2 && st.workers.every((w) => w.generation === before.master.generation + 1 && w.state === 'ready') ? st : undefined;
      }, 30_000, 'the new generation alone');
      assert.deepEqual(healed.master.degraded, []);
      assert.equal(healed.master.actual, 2);
      assert.doesNotMatch((await g.cli('status')).stdout, /DEGRADED/);
      assert.equal((await (await fetch(g.url)).text()).split(' ')[0], String(before.master.generation + 1));
    } finally {
      await g.stop();
    }
  });
});

describe('--restart-delay', () => {
  test('a crashed worker is not replaced before the delay', async () => {
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() }, args: ['--restart-delay', '1.5s'] });
    try {
      await g.waitRunning();
      const victim = (await g.status()).workers[0]!;
      process.kill(victim.pid, 'SIGKILL');
      const died = await g.waitForLog((l) => l.msg === 'worker died; replacing it' && l.workerPid === victim.pid);
      assert.equal(died.delayMs, 1500, 'the first crash waits the delay, not the backoff (0)');
      const started = await g.waitForLog((l) => l.msg === 'worker started' && l.worker === victim.index && l.restarts === 1, 20_000);
      const waited = at(started) - at(died);
      assert.ok(waited >= 1500, `replacement started ${waited} ms after the exit`);
      await waitFor(async () => (await g.status()).workers.filter((w) => w.state === 'ready').length === 2, 15_000, 'the replacement ready');
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });
});

describe('restart policy flags', () => {
  const start = (...args: string[]) => graftCli(['start', fixture('slow-app.ts'), ...args]);
  const oneLine = (r: { code: number | null; stderr: string }, pattern: RegExp) => {
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, pattern);
  };

  test('bad values get one line each', async () => {
    oneLine(await start('--max-memory', 'lots'), /^graft: GRAFT_BAD_ARGUMENT: --max-memory must be a memory size .*"lots"/);
    oneLine(await start('--max-memory', '512B'), /^graft: GRAFT_BAD_ARGUMENT: --max-memory /);
    oneLine(await start('--restart-delay', '2h'), /^graft: GRAFT_BAD_ARGUMENT: --restart-delay must be a duration .*"2h"/);
    oneLine(await start('--max-restarts', '-1'), /^graft: GRAFT_BAD_ARGUMENT: --max-restarts must be a whole number/);
    oneLine(await start('--min-uptime', '5s'), /^graft: GRAFT_BAD_ARGUMENT: --min-uptime .* give --max-restarts N too/);
  });
});
