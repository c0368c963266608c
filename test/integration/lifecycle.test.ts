import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, isAlive, sharedGraft, startGraft, tempDir, waitFor } from '../helpers/graft.js';


function modeFile(mode = 'ok'): string {
  const file = join(tempDir(), 'mode');
  writeFileSync(file, mode);
  return file;
}

describe('worker lifecycle', () => {
  /** For the tests that neither stop their master nor need its restart counts fresh (the killed worker's test runs first). */
  const twoWorkers = sharedGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() } });

  test('a killed worker is replaced', async () => {
    const g = await twoWorkers();
    const before = await g.status();
    const victim = before.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    const after = await waitFor(async () => {
      const s = await g.status();
      const ready = s.workers.filter((w) => w.state === 'ready');
      return ready.length === 2 && !ready.some((w) => w.pid === victim.pid) ? s : undefined;
    }, 15_000, 'a replacement worker');
    const replacement = after.workers.find((w) => w.index === victim.index)!;
    assert.equal(replacement.restarts, 1);
    assert.equal(replacement.generation, before.master.generation);
    const exit = g.logs.find((l) => l.msg === 'worker died; replacing it');
    assert.equal(exit?.signal, 'SIGKILL');
    assert.equal(exit?.generation, before.master.generation);
    assert.equal((await fetch(g.url)).status, 200);
  });

  test('a worker whose event loop is blocked longer than --timeout is killed and replaced', async () => {
    // --timeout is also the time a worker has to boot: 1 s and 2 s were missed by healthy workers on a busy machine (test files run side by side).
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() }, args: ['--timeout', '6'] });
    try {
      await g.waitRunning();
      const before = await g.status();
      // The request never gets an answer: the worker that takes it spins forever.
      const blocked = fetch(`${g.url}/block`, { signal: AbortSignal.timeout(12_000) }).catch(() => undefined);
      const record = await g.waitForLog((l) => l.msg === 'worker event loop blocked; killing it', 20_000);
      assert.equal(record.code, 'GRAFT_WORKER_BLOCKED');
      const blockedPid = record.workerPid as number;
      assert.ok(before.workers.some((w) => w.pid === blockedPid));
      await waitFor(() => !isAlive(blockedPid), 5000, 'the blocked worker to die');
      await waitFor(async () => {
        const s = await g.status();
        return s.workers.filter((w) => w.state === 'ready' && w.pid !== blockedPid).length === 2;
      }, 10_000, 'a replacement for the blocked worker');
      assert.equal((await fetch(g.url)).status, 200);
      await blocked;
    } finally {
      await g.stop();
    }
  });

  test('workers of a killed master finish and exit on their own, and the keeper starts a new master', async () => {
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() } });
    try {
      await g.waitRunning();
      const pids = (await g.status()).workers.map((w) => w.pid);
      assert.equal(pids.length, 2);
      const first = await g.firstMaster();
      process.kill(first, 'SIGKILL');
      await waitFor(() => pids.every((pid) => !isAlive(pid)), 20_000, 'orphaned workers to exit');
      // The keeper does not exit with its master: it starts another on the same sockets (faults.test.ts).
      await g.waitForLog((l) => l.msg === 'master running' && l.pid !== first, 60_000);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });

  test('a master whose keeper is killed stops gracefully, and its workers with it', async () => {
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() } });
    await g.waitRunning();
    const { master, workers } = await g.status();
    g.child.kill('SIGKILL');
    await g.exited;
    // The master's log still reaches the test: its stderr is the keeper's, inherited.
    const gone = await g.waitForLog((l) => l.pid === master.pid && l.code === 'GRAFT_KEEPER_GONE');
    assert.equal(gone.keeper, g.pid);
    const stopped = await g.waitForLog((l) => l.pid === master.pid && l.msg === 'graceful stop');
    assert.equal(stopped.upgrading, false);
    for (const w of workers) {
      const exit = await g.waitForLog((l) => l.pid === master.pid && l.msg === 'worker exited' && l.workerPid === w.pid);
      assert.equal(exit.exitCode, 0, `worker ${w.pid} drained and exited by itself`);
    }
    await waitFor(() => [master.pid, ...workers.map((w) => w.pid)].every((pid) => !isAlive(pid)), 20_000, 'the master and its workers to exit');
  });

  test('scale with the CLI and with TTIN/TTOU', async () => {
    const g = await twoWorkers();
    const generation = (await g.status()).master.generation;
    const up = await g.cli('scale', '3');
    assert.equal(up.code, 0, up.stderr);
    let s = await g.status();
    assert.equal(s.workers.filter((w) => w.state === 'ready').length, 3);
    process.kill(g.pid, 'SIGTTOU');
    await waitFor(async () => (await g.status()).workers.length === 2, 10_000, 'scale down by TTOU');
    process.kill(g.pid, 'SIGTTIN');
    await waitFor(async () => (await g.status()).workers.filter((w) => w.state === 'ready').length === 3, 10_000, 'scale up by TTIN');
    const bad = await g.cli('scale', '0');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /GRAFT_BAD_ARGUMENT/);
    s = await g.status();
    assert.equal(s.master.desired, 3);
    const r = await g.cli('reload');
    assert.equal(r.code, 0, r.stderr);
    s = await waitFor(async () => {
      const st = await g.status();
      return st.workers.length === 3 ? st : undefined;
    }, 15_000, 'old generation gone');
    assert.ok(s.workers.every((w) => w.generation === generation + 1));
  });

  // `graft stop`, and INT to graft (a terminal's ^C, passed on once by the keeper): a graceful stop.
  for (const how of ['graft stop', 'SIGINT'] as const) {
    test(`${how}: a graceful stop lets an in-flight request finish`, async () => {
      // At debug level the worker says when it stopped accepting.
      const g = await startGraft(fixture('mode-app.ts'), { workers: 1, env: { MODE_FILE: modeFile(), GRAFT_LOG_LEVEL: 'debug' } });
      await g.waitRunning();
      const slow = fetch(`${g.url}/held/stop`);
      await g.held('stop');
      const stopping = how === 'graft stop' ? g.cli('stop') : (g.child.kill('SIGINT'), undefined);
      await g.waitForLog((r) => r.msg === 'draining: stopped accepting');
      g.release('stop');
      if (stopping) {
        const stopped = await stopping;
        assert.equal(stopped.code, 0, stopped.stderr);
      }
      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('connection'), 'close');
      assert.match(await res.text(), /^1 /);
      const exit = await g.exited;
      assert.equal(exit.code, 0);
    });
  }

  // `graft stop --fast`, and QUIT to graft: workers killed at once.
  for (const how of ['graft stop --fast', 'SIGQUIT'] as const) {
    test(`${how}: stops at once, a request in flight is cut, not waited for`, async () => {
      // A graceful stop would wait for the held request, which is never released, until the test times out.
      const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: modeFile() }, args: ['--graceful-timeout', '600'] });
      await g.waitRunning();
      const pids = (await g.status()).workers.map((w) => w.pid);
      const inFlight = fetch(`${g.url}/held/quit`).then(
        () => 'answered',
        () => 'cut',
      );
      await g.held('quit');
      if (how === 'SIGQUIT') g.child.kill('SIGQUIT');
      else assert.equal((await g.cli('stop', '--fast')).code, 0);
      const exit = await g.exited;
      assert.equal(exit.code, 0);
      assert.equal(await inFlight, 'cut');
      assert.ok(pids.every((pid) => !isAlive(pid)));
    });
  }

  test('a worker that keeps crashing is reported as a crash loop, not spun', async () => {
    const g = await startGraft(fixture('mode-app.ts'), { workers: 1, env: { MODE_FILE: modeFile() } });
    try {
      await g.waitRunning();
      for (let i = 0; i < 5; i++) {
        await fetch(`${g.url}/crash`).catch(() => undefined);
        await waitFor(async () => (await g.status()).workers.some((w) => w.state === 'ready' && w.restarts === i + 1), 15_000, `restart ${i + 1}`);
      }
      const loop = await g.waitForLog((l) => l.code === 'GRAFT_CRASH_LOOP', 5000);
      assert.equal(loop.level, 'error');
      const s = await g.status();
      assert.equal(s.master.crashLoop, true);
      const delays = g.logs.filter((l) => l.msg === 'worker died; replacing it').map((l) => l.delayMs as number);
      assert.deepEqual(delays, [0, 100, 200, 400, 800]);
    } finally {
      await g.stop();
    }
  });
});
