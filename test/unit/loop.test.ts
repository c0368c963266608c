import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loop } from '../../src/jobs/loop.js';
import { ConfigStore } from '../../src/config/store.js';

test('a loop of many iterations, with and without a pause, adds no listener per iteration', async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const store = new ConfigStore<{ n: number }>();
    store.adopt({ n: 1 }, { version: 1, hash: 'h1', source: 'test' });
    for (const intervalMs of [0, 1]) {
      let seen = 0;
      const finished = new Promise<void>((resolve) => {
        const handle = loop<{ n: number }>(
          ({ iteration }) => {
            seen = iteration + 1;
            if (iteration === 49) void handle.stop().then(resolve);
          },
          { store, intervalMs },
        );
      });
      await finished;
      assert.equal(seen, 50);
    }
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
      'no MaxListenersExceededWarning (or any other warning)',
    );
  } finally {
    process.off('warning', onWarning);
  }
});
