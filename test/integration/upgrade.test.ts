import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFresh } from '../../bench/lib/http.js';
import { fixture, isAlive, startGraft, tempDir } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

describe('graft upgrade', () => {
  test('replaces the master under keep-alive load without failing a request', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2 });
    let successor: number | undefined;
    try {
      await g.waitRunning();
      const before = await g.status();
      const first = before.master.pid;
      assert.equal(before.master.keeper, g.pid, 'graft start is the keeper; the master is its child');
      const oldWorkers = before.workers.map((w) => w.pid);
      // Under load until the old master has drained its workers and exited by itself.
      const { value: exit, load, failed } = await underLoad(
        g.url,
        async () => {
          const r = await g.cli('upgrade');
          assert.equal(r.code, 0, r.stderr);
          successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
          assert.ok(successor > 0 && successor !== first, r.stdout);
          return g.masterExit(first);
        },
        { connections: 64 },
      );
      assert.equal(exit.code, 0);
      assert.ok(load.answered > 100, `only ${load.answered} requests were answered`);
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      const after = await g.status();
      assert.equal(after.master.pid, successor);
      assert.equal(after.master.keeper, g.pid, 'the pid a supervisor watches did not change');
      assert.equal(parentOf(successor!), g.pid, 'the new master is the keeper\'s child, not an orphan');
      assert.equal(after.master.generation, before.master.generation + 1);
      assert.ok(oldWorkers.every((pid) => !isAlive(pid)));
      assert.ok(after.workers.every((w) => w.state === 'ready' && !oldWorkers.includes(w.pid)));
      // The new master is fully in charge: it reloads too.
      const reload = await g.cli('reload');
      assert.equal(reload.code, 0, reload.stderr);
      assert.equal((await fetch(g.url)).status, 200);
      // A TERM to graft start reaches the master in control, which drains; graft start exits with it.
      g.child.kill('SIGTERM');
      assert.equal((await g.exited).code, 0);
      assert.equal(isAlive(successor!), false);
      assert.ok(after.workers.every((w) => !isAlive(w.pid)));
    } finally {
      if (successor && isAlive(successor)) process.kill(successor, 'SIGKILL');
      await g.stop();
    }
  });

  test('SIGUSR2 upgrades too', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const first = await g.firstMaster();
      // Sent to graft start: the keeper passes it to the master.
      g.child.kill('SIGUSR2');
      await g.masterExit(first);
      const s = await g.status();
      assert.notEqual(s.master.pid, first);
      assert.equal((await fetch(g.url)).status, 200);
      const stop = await g.cli('stop');
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal((await g.exited).code, 0, 'graft start exits with the service');
      assert.equal(isAlive(s.master.pid), false);
    } finally {
      await g.stop();
    }
  });

  test('a successor whose workers cannot boot fails the upgrade (GRAFT_UPGRADE_FAILED); the master and workers in place serve on', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'ok');
    const g = await startGraft(fixture('mode-app.ts'), { workers: 2, env: { MODE_FILE: mode } });
    try {
      await g.waitRunning();
      const before = await g.status();
      // The code on disk no longer boots: the successor's first generation throws.
      writeFileSync(mode, 'throw');
      const r = await g.cli('upgrade');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /^graft: GRAFT_UPGRADE_FAILED: .*the current master keeps serving/m);
      const after = await g.status();
      assert.equal(after.master.pid, before.master.pid, 'the same master');
      assert.deepEqual(
        after.workers.map((w) => w.pid).sort(),
        before.workers.map((w) => w.pid).sort(),
        'the same workers',
      );
      const res = await getFresh(g.url);
      assert.equal(res.status, 200);
      assert.match(res.body, /^1 /, 'generation 1 serves');
    } finally {
      await g.stop();
    }
  });
});

/** The parent pid of a live process (field 4 of /proc/<pid>/stat, after the parenthesized name). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}
