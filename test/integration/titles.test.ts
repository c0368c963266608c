import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { childrenOf, titleOf as title } from '../../bench/lib/memory.js';
import { fixture, onlyGeneration, startGraft, waitFor } from '../helpers/graft.js';

/** The processes whose parent is `pid`. */
const children = (pid: number) => childrenOf(pid).map((c) => c.pid);

describe('process titles', () => {
  test('ps names the service of the keeper, the master and the service, generation and place of every worker, and the standby\'s warm workers', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, args: ['--name', 'checkout', '--warm-workers', '1'] });
    try {
      await g.waitRunning();
      assert.equal(title(g.pid), 'graft keeper checkout');
      assert.equal(title(await g.firstMaster()), 'graft master checkout');
      // The keeper's standby master, once it has loaded graft (a title is set then).
      const standby = (await g.waitForLog((l) => l.msg === 'standby master started')).standby as number;
      await waitFor(() => title(standby) === 'graft standby checkout', 30_000, 'the standby to name itself');
      // --warm-workers 1: one worker process waits beside the standby, graft loaded, no app.
      await waitFor(() => children(standby).some((pid) => title(pid) === 'graft worker checkout warm'), 30_000, 'the warm worker to name itself');
      assert.equal(children(standby).length, 1, 'one warm worker');
      let s = await g.status();
      assert.deepEqual(s.workers.map((w) => title(w.pid)).sort(), ['graft worker checkout generation 1 #0', 'graft worker checkout generation 1 #1']);
      assert.equal((await g.cli('reload')).code, 0);
      s = await onlyGeneration(g, 2);
      assert.deepEqual(s.workers.map((w) => title(w.pid)).sort(), ['graft worker checkout generation 2 #0', 'graft worker checkout generation 2 #1']);
    } finally {
      await g.stop();
    }
  });
});
