import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Slot, type SlotEvent } from '../../src/core/slot.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

function counterSlot(options: { failOn?: number[]; verifyFailOn?: number[]; buildMs?: number; drainTimeoutMs?: number } = {}) {
  const disposed: number[] = [];
  const discarded: number[] = [];
  const events: SlotEvent[] = [];
  const slot = new Slot<{ v: number }>(
    {
      build: async ({ version }) => {
        await new Promise((r) => setTimeout(r, options.buildMs ?? 1));
        if (options.failOn?.includes(version)) throw new Error(`build ${version} failed`);
        return { v: version };
      },
      verify: (value) => {
        if (options.verifyFailOn?.includes(value.v)) throw new Error(`verify ${value.v} failed`);
      },
      discard: (value) => void discarded.push(value.v),
      dispose: (value) => void disposed.push(value.v),
    },
    { name: 'test', drainTimeoutMs: options.drainTimeoutMs ?? 1000, onEvent: (e) => events.push(e) },
  );
  return { slot, disposed, discarded, events };
}

describe('generation slot', () => {
  test('commit makes the new generation current and disposes the old one', async () => {
    const { slot, disposed } = counterSlot();
    const g1 = await slot.swap();
    assert.equal(g1.version, 1);
    assert.equal(slot.current?.value.v, 1);
    const g2 = await slot.swap();
    assert.equal(g2.version, 2);
    assert.equal(slot.current?.value.v, 2);
    await slot.settled();
    assert.deepEqual(disposed, [1]);
    assert.equal(g1.state, 'disposed');
  });

  test('a failed build or verify changes nothing and reports the error', async () => {
    const { slot, disposed, discarded, events } = counterSlot({ failOn: [2], verifyFailOn: [3] });
    await slot.swap();
    await assert.rejects(slot.swap(), /build 2 failed/);
    assert.equal(slot.current?.version, 1);
    await assert.rejects(slot.swap(), /verify 3 failed/);
    assert.equal(slot.current?.version, 1);
    assert.deepEqual(discarded, [3]);
    assert.deepEqual(disposed, []);
    assert.deepEqual(
      events.filter((e) => e.type === 'reject').map((e) => e.version),
      [2, 3],
    );
    const g4 = await slot.swap();
    assert.equal(g4.version, 4);
  });

  test('swaps asked for during a swap coalesce into one more', async () => {
    const { slot } = counterSlot({ buildMs: 20 });
    await slot.swap();
    const first = slot.swap();
    const coalesced = [slot.swap(), slot.swap(), slot.swap()];
    const g = await first;
    assert.equal(g.version, 2);
    const after = await Promise.all(coalesced);
    assert.deepEqual(
      after.map((x) => x.version),
      [3, 3, 3],
    );
    assert.equal(slot.current?.version, 3);
  });

  test('requests of coalesced swaps are merged and reach the one build that serves them', async () => {
    const seen: Array<string[] | undefined> = [];
    const slot = new Slot<number, string[]>(
      {
        build: async ({ version, request }) => {
          seen.push(request);
          await new Promise((r) => setTimeout(r, 10));
          return version;
        },
      },
      { name: 'merging', drainTimeoutMs: 100, merge: (a, b) => [...a, ...b] },
    );
    await slot.swap(['first']);
    const running = slot.swap(['a']);
    const merged = [slot.swap(['b']), slot.swap(), slot.swap(['c'])];
    await running;
    const after = await Promise.all(merged);
    assert.deepEqual(after.map((g) => g.version), [3, 3, 3]);
    assert.deepEqual(seen, [['first'], ['a'], ['b', 'c']]);
  });

  test('the old generation is disposed exactly once, after its last lease', async () => {
    const { slot, disposed } = counterSlot();
    await slot.swap();
    const lease = slot.lease();
    const second = slot.lease();
    await slot.swap();
    await tick();
    assert.deepEqual(disposed, [], 'disposed while leased');
    lease.release();
    lease.release(); // idempotent
    await tick();
    assert.deepEqual(disposed, []);
    assert.equal(slot.lease().version, 2, 'new leases go to the new generation');
    second.release();
    await slot.settled();
    assert.deepEqual(disposed, [1]);
  });

  test('use() holds a lease for as long as the call runs', async () => {
    const { slot, disposed } = counterSlot();
    await slot.swap();
    let release!: () => void;
    const running = slot.use((value) => new Promise<number>((r) => (release = () => r(value.v))));
    await slot.swap();
    await tick();
    assert.deepEqual(disposed, []);
    release();
    assert.equal(await running, 1);
    await slot.settled();
    assert.deepEqual(disposed, [1]);
  });

  test('drain is bounded by the drain timeout', async () => {
    const { slot, disposed, events } = counterSlot({ drainTimeoutMs: 50 });
    await slot.swap();
    slot.lease(); // never released
    await slot.swap();
    await slot.settled();
    assert.deepEqual(disposed, [1]);
    const dispose = events.find((e) => e.type === 'dispose');
    assert.ok(dispose && dispose.type === 'dispose' && dispose.timedOut);
  });

  test('close aborts a build in flight and retires the live generation', async () => {
    let sawAbort = false;
    const slot = new Slot<number>(
      {
        build: ({ version, signal }) =>
          version === 1
            ? Promise.resolve(1)
            : new Promise((_, reject) =>
                signal.addEventListener('abort', () => {
                  sawAbort = true;
                  reject(signal.reason);
                }),
              ),
        dispose: () => {},
      },
      { name: 'closing', drainTimeoutMs: 100 },
    );
    await slot.swap();
    const pending = slot.swap();
    await tick();
    await slot.close();
    await assert.rejects(pending, /closed/);
    assert.equal(sawAbort, true);
    assert.equal(slot.current, undefined);
    await assert.rejects(slot.swap(), (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
  });
});
