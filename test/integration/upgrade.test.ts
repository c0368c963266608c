import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixture, isAlive, startGraft, waitFor } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

describe('graft upgrade', () => {
  test('replaces the master under keep-alive load without failing a request', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2 });
    let successor: number | undefined;
    try {
      await g.waitRunning();
      const before = await g.status();
      const oldWorkers = before.workers.map((w) => w.pid);
      // Under load until the old master has drained its workers and exited by itself.
      const { value: exit, load, failed } = await underLoad(
        g.url,
        async () => {
          const r = await g.cli('upgrade');
          assert.equal(r.code, 0, r.stderr);
          successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
          assert.ok(successor > 0 && successor !== g.pid, r.stdout);
          return g.exited;
        },
        { connections: 64 },
      );
      assert.equal(exit.code, 0);
      assert.ok(load.answered > 100, `only ${load.answered} requests were answered`);
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      const after = await g.status();
      assert.equal(after.master.pid, successor);
      assert.equal(after.master.generation, before.master.generation + 1);
      assert.ok(oldWorkers.every((pid) => !isAlive(pid)));
      assert.ok(after.workers.every((w) => w.state === 'ready' && !oldWorkers.includes(w.pid)));
      // The new master is fully in charge: it reloads too.
      const reload = await g.cli('reload');
      assert.equal(reload.code, 0, reload.stderr);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      if (successor && isAlive(successor)) {
        await g.cli('stop');
        await waitFor(() => !isAlive(successor!), 15_000, 'the successor to stop');
      }
      await g.stop();
    }
  });

  test('SIGUSR2 upgrades too', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      g.child.kill('SIGUSR2');
      await g.exited;
      const s = await waitFor(async () => {
        const st = await g.status().catch(() => undefined);
        return st && st.master.pid !== g.pid ? st : undefined;
      }, 15_000, 'the successor');
      assert.equal((await fetch(g.url)).status, 200);
      await g.cli('stop');
      await waitFor(() => !isAlive(s.master.pid), 15_000, 'the successor to stop');
    } finally {
      await g.stop();
    }
  });
});
