import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deferred, type Deferred } from '../../src/core/deferred.js';
import { GraftError } from '../../src/core/errors.js';
import { Coalescing, Queue } from '../../src/core/queue.js';

type Job = { name: string; newest?: number; stop?: boolean };

/** A queue whose entries finish when the test says so. */
function gatedQueue(options: { open?: boolean } = {}) {
  const started: string[] = [];
  const gates = new Map<string, Deferred<string>>();
  const gate = (name: string) => {
    let g = gates.get(name);
    if (!g) gates.set(name, (g = deferred<string>()));
    return g;
  };
  const queue = new Queue<Job, string>(
    {
      handle: (job) => {
        const label = job.newest === undefined ? job.name : `${job.name}@${job.newest}`;
        started.push(label);
        return gate(label).promise;
      },
      // Jobs of one name bring a thing to its newest wanted state: the newest asked for wins.
      merge: (waiting, later) => (waiting.name === later.name ? { ...waiting, newest: Math.max(waiting.newest ?? 0, later.newest ?? 0) } : undefined),
      preempts: (job) => job.stop === true,
      refused: () => new GraftError('GRAFT_STOPPING', 'stopped'),
    },
    options,
  );
  return { queue, started, finish: (name: string, value = name) => gate(name).resolve(value), fail: (name: string, err: Error) => gate(name).reject(err) };
}

const turn = () => new Promise((r) => setImmediate(r));
const refused = (err: unknown) => (err as { code?: string }).code === 'GRAFT_STOPPING';

describe('queue engine', () => {
  test('one entry at a time, in the order asked; nothing starts before open()', async () => {
    const { queue, started, finish } = gatedQueue({ open: false });
    const a = queue.submit({ name: 'a' });
    const b = queue.submit({ name: 'b' });
    await turn();
    assert.deepEqual(started, []);
    queue.open();
    assert.deepEqual(started, ['a']);
    assert.equal(queue.current?.name, 'a');
    assert.equal(queue.waiting, 1);
    finish('a');
    assert.equal(await a, 'a');
    assert.deepEqual(started, ['a', 'b']);
    finish('b');
    assert.equal(await b, 'b');
    assert.equal(queue.current, undefined);
  });

  test('entries asked for while one runs coalesce into the one waiting, to the newest wanted state; every asker gets its outcome', async () => {
    const { queue, started, finish } = gatedQueue();
    const running = queue.submit({ name: 'swap', newest: 1 });
    const waiting = [2, 5, 3].map((newest) => queue.submit({ name: 'swap', newest }));
    const other = queue.submit({ name: 'scale' });
    assert.equal(queue.waiting, 2, 'three swaps became one entry; the scale does not merge');
    finish('swap@1');
    assert.equal(await running, 'swap@1');
    assert.deepEqual(started, ['swap@1', 'swap@5'], 'one more swap, to the newest state asked for');
    await turn();
    assert.deepEqual(started, ['swap@1', 'swap@5'], 'the scale waits behind the merged swap');
    finish('swap@5');
    assert.deepEqual(await Promise.all(waiting), ['swap@5', 'swap@5', 'swap@5']);
    assert.deepEqual(started, ['swap@1', 'swap@5', 'scale']);
    finish('scale');
    assert.equal(await other, 'scale');
  });

  test('an asker that asks again once answered starts a new entry, not one merged into the finished one', async () => {
    const runs: number[] = [];
    let n = 0;
    const again = new Coalescing('again', async () => {
      runs.push(++n);
      await turn();
      return n;
    });
    const first = await again.run();
    const second = await again.run();
    assert.deepEqual([first, second, runs], [1, 2, [1, 2]]);
  });

  test('entries() lists the entry in flight, then the ones waiting, in order', async () => {
    const { queue, finish } = gatedQueue();
    assert.deepEqual(queue.entries(), []);
    const a = queue.submit({ name: 'a' });
    const b = queue.submit({ name: 'b' });
    const c = queue.submit({ name: 'c', newest: 2 });
    assert.deepEqual(queue.entries(), [{ name: 'a' }, { name: 'b' }, { name: 'c', newest: 2 }]);
    finish('a');
    await a;
    assert.deepEqual(queue.entries(), [{ name: 'b' }, { name: 'c', newest: 2 }]);
    finish('b');
    finish('c@2');
    await Promise.all([b, c]);
    assert.deepEqual(queue.entries(), []);
  });

  test('stop() of an idle queue resolves at once, and refuses what is asked for later', async () => {
    const { queue, started } = gatedQueue();
    await queue.stop();
    await assert.rejects(queue.submit({ name: 'a' }), refused);
    assert.deepEqual(started, []);
    const idle = new Coalescing('idle', async () => 1);
    await idle.stop();
    await assert.rejects(idle.run(), refused);
  });

  test('a failed entry rejects its askers and the next one runs', async () => {
    const { queue, started, fail, finish } = gatedQueue();
    const a = queue.submit({ name: 'a' });
    const b = queue.submit({ name: 'b' });
    fail('a', new Error('a broke'));
    await assert.rejects(a, /a broke/);
    assert.deepEqual(started, ['a', 'b']);
    finish('b');
    assert.equal(await b, 'b');
  });

  test('stop refuses what waits and what is asked for later; the entry in flight finishes and is answered', async () => {
    const { queue, started, finish } = gatedQueue();
    const running = queue.submit({ name: 'a' });
    const queued = queue.submit({ name: 'b' });
    let stopped = false;
    const stopping = queue.stop().then(() => (stopped = true));
    await assert.rejects(queued, refused);
    await assert.rejects(queue.submit({ name: 'c' }), refused);
    await turn();
    assert.equal(stopped, false, 'stop waits for the entry in flight');
    finish('a');
    assert.equal(await running, 'a');
    await stopping;
    assert.deepEqual(started, ['a']);
  });

  test('a preempting entry runs at once, beside the one in flight; everything else is refused', async () => {
    const { queue, started, finish } = gatedQueue();
    const running = queue.submit({ name: 'reload' });
    const queued = queue.submit({ name: 'scale' });
    const stop = queue.submit({ name: 'stop', stop: true });
    assert.deepEqual(started, ['reload', 'stop'], 'the stop did not wait its turn');
    await assert.rejects(queued, refused);
    await assert.rejects(queue.submit({ name: 'config' }), refused);
    finish('stop');
    assert.equal(await stop, 'stop');
    finish('reload');
    assert.equal(await running, 'reload', 'the entry in flight is not cut short by the queue');
  });

  test('a coalescing queue runs at most one at a time, then one more for everything asked meanwhile; stop refuses the one waiting', async () => {
    let state = 0;
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    const swaps = new Coalescing('module', async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      const read = state; // a run reads what is wanted when it starts
      seen.push(read);
      await turn();
      inFlight--;
      return read;
    });
    state = 1;
    const first = swaps.run();
    state = 2;
    const later = [swaps.run(), swaps.run()];
    state = 3;
    later.push(swaps.run());
    assert.equal(await first, 1);
    assert.deepEqual(await Promise.all(later), [3, 3, 3], 'one more run, reading the newest state');
    assert.deepEqual([seen, most], [[1, 3], 1]);
    const running = swaps.run();
    const waiting = swaps.run();
    await swaps.stop();
    await running;
    await assert.rejects(waiting, refused);
    await assert.rejects(swaps.run(), (err: Error) => refused(err) && /module is closed/.test(err.message));
  });
});
