import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fixture, onlyGeneration, startGraft, waitFor } from '../helpers/graft.js';

/** What `ps -o args` shows for a process (its title, on Linux). */
function title(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
}

describe('process titles', () => {
  test('ps names the service of the keeper, the master and the service, generation and place of every worker', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, args: ['--name', 'checkout'] });
    try {
      await g.waitRunning();
      assert.equal(title(g.pid), 'graft keeper checkout');
      assert.equal(title(await g.firstMaster()), 'graft master checkout');
      // The keeper's standby master, once it has loaded graft (a title is set then).
      const standby = (await g.waitForLog((l) => l.msg === 'standby master started')).standby as number;
      await waitFor(() => title(standby) === 'graft standby checkout', 30_000, 'the standby to name itself');
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
