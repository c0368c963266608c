import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { Coalescing, Queue } from '../../src/core/queue.js';
import { Slot, unlessAborted, type SlotEvent, type SlotHooks, type SlotOptions } from '../../src/core/slot.js';
import { deferred } from '../../src/core/deferred.js';

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
    const { generation: g1 } = await slot.replace();
    assert.equal(g1.version, 1);
    assert.equal(slot.current?.value.v, 1);
    const { generation: g2, previous } = await slot.replace();
    assert.equal(g2.version, 2);
    assert.equal(previous, g1);
    assert.equal(slot.current?.value.v, 2);
    await slot.settled();
    assert.deepEqual(disposed, [1]);
    assert.equal(g1.state, 'disposed');
  });

  test('a failed build or verify changes nothing and reports the error', async () => {
    const { slot, disposed, discarded, events } = counterSlot({ failOn: [2], verifyFailOn: [3] });
    await slot.replace();
    await assert.rejects(slot.replace(), /build 2 failed/);
    assert.equal(slot.current?.version, 1);
    await assert.rejects(slot.replace(), /verify 3 failed/);
    assert.equal(slot.current?.version, 1);
    assert.deepEqual(discarded, [3]);
    assert.deepEqual(disposed, []);
    assert.deepEqual(
      events.filter((e) => e.type === 'reject').map((e) => e.version),
      [2, 3],
    );
    const { generation: g4 } = await slot.replace();
    assert.equal(g4.version, 4);
  });

  test('run by a coalescing queue, swaps asked for during a swap coalesce into one more', async () => {
    const { slot } = counterSlot({ buildMs: 20 });
    const swaps = new Coalescing('test', () => slot.replace());
    await swaps.run();
    const first = swaps.run();
    const coalesced = [swaps.run(), swaps.run(), swaps.run()];
    const g = await first;
    assert.equal(g.generation.version, 2);
    const after = await Promise.all(coalesced);
    assert.deepEqual(
      after.map((x) => x.generation.version),
      [3, 3, 3],
    );
    assert.equal(slot.current?.version, 3);
  });

  test("requests of coalesced swaps are merged by the owner's queue and reach the one build that serves them", async () => {
    const seen: Array<string[] | undefined> = [];
    const slot = new Slot<number, string[]>(
      {
        build: async ({ version, request }) => {
          seen.push(request);
          await new Promise((r) => setTimeout(r, 10));
          return version;
        },
      },
      { name: 'merging', drainTimeoutMs: 100 },
    );
    // An empty request asks for nothing of its own: it merges into whatever waits.
    const replaces = new Queue<string[], Awaited<ReturnType<typeof slot.replace>>>({
      handle: (request) => slot.replace(request),
      merge: (a, b) => [...a, ...b],
      refused: () => new Error('closed'),
    });
    await replaces.submit(['first']);
    const running = replaces.submit(['a']);
    const merged = [replaces.submit(['b']), replaces.submit([]), replaces.submit(['c'])];
    await running;
    const after = await Promise.all(merged);
    assert.deepEqual(after.map((g) => g.generation.version), [3, 3, 3]);
    assert.deepEqual(seen, [['first'], ['a'], ['b', 'c']]);
  });

  test('the old generation is disposed exactly once, after its last lease', async () => {
    const { slot, disposed } = counterSlot();
    await slot.replace();
    const lease = slot.lease();
    const second = slot.lease();
    await slot.replace();
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
    await slot.replace();
    let release!: () => void;
    const running = slot.use((value) => new Promise<number>((r) => (release = () => r(value.v))));
    await slot.replace();
    await tick();
    assert.deepEqual(disposed, []);
    release();
    assert.equal(await running, 1);
    await slot.settled();
    assert.deepEqual(disposed, [1]);
  });

  test('drain is bounded by the drain timeout', async () => {
    const { slot, disposed, events } = counterSlot({ drainTimeoutMs: 50 });
    await slot.replace();
    slot.lease(); // never released
    await slot.replace();
    await slot.settled();
    assert.deepEqual(disposed, [1]);
    const dispose = events.find((e) => e.type === 'dispose');
    assert.ok(dispose && dispose.type === 'dispose' && dispose.timedOut);
  });

  test('close aborts a build in flight and retires the live generation', async () => {
    let sawAbort = false;
    const building = deferred<void>();
    const slot = new Slot<number>(
      {
        build: ({ version, signal }) =>
          version === 1
            ? Promise.resolve(1)
            : new Promise((_, reject) => {
                signal.addEventListener('abort', () => {
                  sawAbort = true;
                  reject(signal.reason);
                });
                building.resolve();
              }),
        dispose: () => {},
      },
      { name: 'closing', drainTimeoutMs: 100 },
    );
    await slot.replace();
    const pending = slot.replace();
    await building.promise;
    await slot.close();
    await assert.rejects(pending, /closed/);
    assert.equal(sawAbort, true);
    assert.equal(slot.current, undefined);
    await assert.rejects(slot.replace(), (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
  });

  test('the commit step runs once per replace, before the next starts, and every merged caller gets its result and the true previous', async () => {
    const commits: Array<[number, number | undefined]> = [];
    let order: string[] = [];
    const slot = new Slot<number, undefined, string>(
      {
        build: async ({ version }) => {
          order.push(`build ${version}`);
          await new Promise((r) => setTimeout(r, 10));
          return version;
        },
        commit: async (next, previous) => {
          order.push(`commit ${next.version} start`);
          await new Promise((r) => setTimeout(r, 20));
          commits.push([next.version, previous?.version]);
          order.push(`commit ${next.version} end`);
          return `v${next.version}`;
        },
      },
      { name: 'committing', drainTimeoutMs: 100 },
    );
    const replaces = new Coalescing('committing', () => slot.replace());
    await replaces.run();
    order = [];
    const first = replaces.run();
    const merged = [replaces.run(), replaces.run(), replaces.run()];
    const a = await first;
    const rest = await Promise.all(merged);
    assert.deepEqual([a.result, a.previous?.version], ['v2', 1]);
    for (const r of rest) assert.deepEqual([r.result, r.generation.version, r.previous?.version], ['v3', 3, 2]);
    assert.deepEqual(commits, [
      [1, undefined],
      [2, 1],
      [3, 2],
    ]);
    // The next build starts only after the previous commit step has finished.
    assert.deepEqual(order, ['build 2', 'commit 2 start', 'commit 2 end', 'build 3', 'commit 3 start', 'commit 3 end']);
  });

  test("an amend runs on the live generation, in its owner's queue in order with replaces", async () => {
    const order: string[] = [];
    const slot = new Slot<{ n: number; count: number }>(
      {
        build: async ({ version, previous }) => {
          order.push(`build ${version}`);
          await new Promise((r) => setTimeout(r, 10));
          return { n: version, count: previous?.count ?? 1 };
        },
      },
      { name: 'amending', drainTimeoutMs: 100 },
    );
    await assert.rejects(slot.amend(() => 0), (err: { code?: string }) => err.code === 'GRAFT_NOT_LIVE');
    const queue = new Queue<'replace' | 'amend'>({
      handle: (kind) =>
        kind === 'replace'
          ? slot.replace()
          : slot.amend((live) => {
              order.push(`amend ${live.version}`);
              live.value.count = 5;
              return live.version;
            }),
      refused: () => new Error('closed'),
    });
    await queue.submit('replace');
    const replacing = queue.submit('replace') as ReturnType<typeof slot.replace>;
    // The slot itself does not queue: a second operation while one runs is refused.
    await assert.rejects(slot.amend(() => 0), (err: { code?: string }) => err.code === 'GRAFT_INTERNAL');
    await assert.rejects(slot.replace(), (err: { code?: string }) => err.code === 'GRAFT_INTERNAL');
    const amended = queue.submit('amend');
    const after = queue.submit('replace') as ReturnType<typeof slot.replace>;
    assert.equal(await amended, 2, 'the amend waited for the replace in flight');
    await replacing;
    const last = await after;
    assert.equal(last.generation.value.count, 5, 'the next generation starts from the amended one');
    assert.deepEqual(order, ['build 1', 'build 2', 'amend 2', 'build 3']);
  });

  test('an owner that finds nothing changed does not replace, and no version number is taken', async () => {
    let same = false;
    const slot = new Slot<number>({ build: async ({ version }) => version }, { name: 'unchanged', drainTimeoutMs: 100 });
    // The owner's queue decides what to do with its turn (a config store compares the content first).
    const changes = new Coalescing('unchanged', async () => (same ? 'unchanged' : (await slot.replace()).generation.version));
    await changes.run();
    same = true;
    assert.equal(await changes.run(), 'unchanged');
    assert.equal(await changes.run(), 'unchanged');
    assert.equal(slot.upcoming, 2);
    same = false;
    assert.equal(await changes.run(), 2);
  });

  test('a failed build takes its version number: the next one does not reuse it', async () => {
    const { slot, discarded, disposed } = counterSlot({ failOn: [2] });
    await slot.replace();
    await assert.rejects(slot.replace(), /build 2 failed/);
    assert.equal((await slot.replace()).generation.version, 3);
    assert.deepEqual([discarded, disposed], [[], []]);
  });

  test('a generation discarded after a failed verify is given its own version number', async () => {
    const seen: Array<[string, number]> = [];
    const slot = new Slot<number>(
      {
        build: async ({ version }) => version,
        verify: (value) => {
          if (value === 2) throw new Error('no');
        },
        dispose: (value, { version }) => void seen.push(['dispose', version]),
      },
      { name: 'numbers' },
    );
    await slot.replace();
    await assert.rejects(slot.replace(), /no/);
    assert.deepEqual(seen, [['dispose', 2]], 'the default discard disposes it under its own number');
  });

  test('adopt makes a value live without building it, and numbering goes on from it', async () => {
    const { slot, disposed } = counterSlot();
    slot.adopt({ v: 0 }, 7);
    assert.equal(slot.current?.version, 7);
    assert.equal(slot.upcoming, 8);
    const { generation, previous } = await slot.replace();
    assert.deepEqual([generation.version, previous?.version], [8, 7]);
    // On an idle slot, the live generation is retired as by a replace (a worker thread takes its process's snapshots so).
    slot.adopt({ v: 20 }, 20);
    assert.equal(slot.current?.version, 20);
    await slot.settled();
    assert.deepEqual(disposed, [0, 8]);
    // Not while a replace runs.
    const running = slot.replace();
    assert.throws(() => slot.adopt({ v: 1 }), (err: { code?: string }) => err.code === 'GRAFT_INTERNAL');
    await running;
  });
});

/** Waits, a turn of the event loop at a time, until the clock reads at least `ms` past `from`. */
async function clockPast(from: number, ms: number): Promise<void> {
  while (Date.now() < from + ms) await new Promise((r) => setImmediate(r));
}

/** The timers that hold the process open now. */
const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A slot whose hooks record what they were told. */
function recordingSlot(hooks: Partial<SlotHooks<{ v: number }>> = {}, options: Partial<SlotOptions> = {}) {
  const calls: Array<[string, number, unknown]> = [];
  const events: SlotEvent[] = [];
  const slot = new Slot<{ v: number }>(
    {
      build: async ({ version }) => ({ v: version }),
      discard: (value, info) => void calls.push(['discard', value.v, info]),
      dispose: (value, info) => void calls.push(['dispose', value.v, info]),
      ...hooks,
    },
    { name: 'rec', onEvent: (e) => events.push(e), ...options },
  );
  return { slot, calls, events };
}

/**
 * A recording slot with generation 1 live and the replace by generation 2
 * (`pending`) held in its verify until the test resolves `pass`.
 */
async function replaceHeldInVerify() {
  const verifying = deferred<void>();
  const pass = deferred<void>();
  const recording = recordingSlot({
    verify: (value) => {
      if (value.v === 1) return;
      verifying.resolve();
      return pass.promise;
    },
  });
  await recording.slot.replace();
  const pending = recording.slot.replace();
  await verifying.promise;
  return { ...recording, pending, pass };
}

describe('generation slot: what it tells and what it exposes', () => {
  test("every step is told with the slot's name, the versions, the generations in flight and how long building and draining took", async () => {
    const { slot, events } = counterSlot();
    assert.equal(slot.name, 'test');
    const t0 = Date.now();
    await slot.replace();
    const lease = slot.lease();
    const { previous: g1 } = await slot.replace();
    const t1 = Date.now();
    const retiredAt = g1!.retiredAt!;
    // Some time passes before the lease goes: the drain lasts that long.
    await clockPast(retiredAt, 2);
    lease.release();
    await slot.settled();
    const t2 = Date.now();
    const figures = events.map((e) => (e.type === 'commit' ? e.buildMs : e.type === 'dispose' ? e.drainMs : undefined));
    assert.deepEqual(
      events.map((e) => (e.type === 'commit' ? { ...e, buildMs: 0 } : e.type === 'dispose' ? { ...e, drainMs: 0 } : e)),
      [
        { type: 'build', slot: 'test', version: 1 },
        { type: 'commit', slot: 'test', version: 1, previous: undefined, buildMs: 0 },
        { type: 'build', slot: 'test', version: 2 },
        { type: 'commit', slot: 'test', version: 2, previous: 1, buildMs: 0 },
        { type: 'drain', slot: 'test', version: 1, inFlight: 1 },
        { type: 'dispose', slot: 'test', version: 1, drainMs: 0, timedOut: false },
      ],
    );
    for (const buildMs of [figures[1]!, figures[3]!]) assert.ok(buildMs >= 0 && buildMs <= t1 - t0, `buildMs ${buildMs} outside [0, ${t1 - t0}]`);
    const drainMs = figures[5]!;
    assert.ok(drainMs >= 2 && drainMs <= t2 - retiredAt, `drainMs ${drainMs} outside [2, ${t2 - retiredAt}]`);
  });

  test('an adopted generation is told as a commit that took no build', async () => {
    const { slot, events } = counterSlot();
    slot.adopt({ v: 7 }, 7);
    slot.adopt({ v: 9 });
    await slot.settled();
    assert.deepEqual(
      events.filter((e) => e.type === 'commit'),
      [
        { type: 'commit', slot: 'test', version: 7, previous: undefined, buildMs: 0 },
        { type: 'commit', slot: 'test', version: 8, previous: 7, buildMs: 0 },
      ],
    );
  });

  test('replacing is true only while a replace runs; draining holds the retired generations until they are disposed', async () => {
    const { slot } = counterSlot();
    assert.equal(slot.replacing, false, 'idle');
    const first = slot.replace();
    assert.equal(slot.replacing, true);
    await first;
    assert.equal(slot.replacing, false);
    let during: boolean | undefined;
    await slot.amend(() => (during = slot.replacing));
    assert.equal(during, false, 'an amend is no replace');
    assert.equal(slot.draining.size, 0);
    const lease = slot.lease();
    const { previous } = await slot.replace();
    assert.deepEqual([...slot.draining], [previous]);
    lease.release();
    await slot.settled();
    assert.equal(slot.draining.size, 0);
  });

  test('lease and use before the first generation is live are refused with GRAFT_NOT_LIVE', async () => {
    const { slot } = counterSlot();
    assert.throws(() => slot.lease(), (err: { code?: string }) => err.code === 'GRAFT_NOT_LIVE');
    await assert.rejects(slot.use(() => 1), (err: { code?: string }) => err.code === 'GRAFT_NOT_LIVE');
  });

  test('use() releases its lease when the call returns and when it throws', async () => {
    const { slot } = counterSlot();
    const { generation } = await slot.replace();
    assert.equal(await slot.use((value, version) => value.v * 10 + version), 11);
    assert.equal(generation.inFlight, 0);
    await assert.rejects(
      slot.use(() => {
        throw new Error('app failed');
      }),
      /app failed/,
    );
    assert.equal(generation.inFlight, 0);
  });

  test('closing an idle slot drains and disposes its live generation; a slot that never had one closes too', async () => {
    const { slot, calls, events } = recordingSlot();
    const { generation } = await slot.replace();
    await slot.close();
    assert.deepEqual(calls, [['dispose', 1, { version: 1, timedOut: false }]]);
    assert.equal(generation.state, 'disposed');
    assert.equal(slot.current, undefined);
    assert.deepEqual(events.at(-1), { type: 'dispose', slot: 'rec', version: 1, drainMs: (events.at(-1) as { drainMs: number }).drainMs, timedOut: false });
    await slot.close();
    assert.equal(calls.length, 1, 'closed once');

    const empty = recordingSlot();
    await empty.slot.close();
    assert.deepEqual([empty.calls, empty.events], [[], []]);
  });

  test('a dispose that throws is told as a dispose-error; the generation is disposed all the same', async () => {
    const failure = new Error('close failed');
    const { slot, events } = recordingSlot({
      dispose: () => {
        throw failure;
      },
    });
    await slot.replace();
    const { previous } = await slot.replace();
    await slot.settled();
    assert.deepEqual(
      events.filter((e) => e.type === 'dispose-error' || e.type === 'dispose').map((e) => ({ ...e, drainMs: 0 })),
      [
        { type: 'dispose-error', slot: 'rec', version: 1, error: failure, drainMs: 0 },
        { type: 'dispose', slot: 'rec', version: 1, drainMs: 0, timedOut: false },
      ],
    );
    assert.equal(previous!.state, 'disposed');
  });

  test('a slot without dispose or discard hooks retires and discards without an error', async () => {
    const { slot, events } = recordingSlot({
      discard: undefined,
      dispose: undefined,
      verify: (value) => {
        if (value.v === 3) throw new Error('verify 3 failed');
      },
    });
    await slot.replace();
    await slot.replace();
    await assert.rejects(slot.replace(), /verify 3 failed/);
    await slot.close();
    assert.deepEqual(
      events.filter((e) => e.type === 'dispose-error'),
      [],
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'dispose').map((e) => e.version),
      [1, 2],
    );
  });

  test('discard is told the version and the reason; without one, dispose is, as not timed out', async () => {
    const reason = new Error('verify 2 failed');
    const verify = (value: { v: number }) => {
      if (value.v === 2) throw reason;
    };
    const withDiscard = recordingSlot({ verify });
    await withDiscard.slot.replace();
    await assert.rejects(withDiscard.slot.replace(), /verify 2 failed/);
    assert.deepEqual(withDiscard.calls, [['discard', 2, { version: 2, reason }]]);

    const withoutDiscard = recordingSlot({ verify, discard: undefined });
    await withoutDiscard.slot.replace();
    await assert.rejects(withoutDiscard.slot.replace(), /verify 2 failed/);
    assert.deepEqual(withoutDiscard.calls, [['dispose', 2, { version: 2, timedOut: false }]]);
  });

  test('a build that ignores the abort: its generation is discarded unverified, and the replace rejects', async () => {
    const building = deferred<void>();
    const finish = deferred<{ v: number }>();
    const verified: number[] = [];
    const { slot, calls, events } = recordingSlot({
      build: ({ version }) => {
        if (version === 1) return Promise.resolve({ v: 1 });
        building.resolve();
        return finish.promise;
      },
      verify: (value) => void verified.push(value.v),
    });
    await slot.replace();
    const pending = slot.replace();
    await building.promise;
    const closing = slot.close();
    finish.resolve({ v: 2 });
    await assert.rejects(pending, (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
    await closing;
    assert.deepEqual(verified, [1], 'not verified once closed');
    assert.deepEqual(calls[0]?.slice(0, 2), ['discard', 2]);
    assert.equal((calls[0]![2] as { reason: { code?: string } }).reason.code, 'GRAFT_STOPPING');
    assert.deepEqual(calls[1], ['dispose', 1, { version: 1, timedOut: false }]);
    assert.deepEqual(
      events.filter((e) => e.type === 'commit').map((e) => e.version),
      [1],
    );
  });

  test('a second close() while the first waits for the running operation resolves only once the live generation is disposed too', async () => {
    const { slot, calls, pending, pass } = await replaceHeldInVerify();
    const first = slot.close();
    const second = slot.close();
    pass.resolve();
    await assert.rejects(pending, (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
    await second;
    assert.deepEqual(calls.map((c) => c.slice(0, 2)), [['discard', 2], ['dispose', 1]], 'the second close waited for the live generation');
    await first;
  });

  test('a slot closed while verify runs discards the verified generation: it never goes live', async () => {
    const { slot, calls, events, pending, pass } = await replaceHeldInVerify();
    const closing = slot.close();
    pass.resolve();
    await assert.rejects(pending, (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
    await closing;
    assert.deepEqual(
      calls.map((c) => c.slice(0, 2)),
      [
        ['discard', 2],
        ['dispose', 1],
      ],
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'commit').map((e) => e.version),
      [1],
    );
  });

  test('without a drain timeout, a drain hook takes as long as it needs: it is never aborted', async () => {
    const signals: AbortSignal[] = [];
    const { slot, calls } = recordingSlot({
      // The retired generation's work takes a few milliseconds.
      drain: (_generation, signal) => {
        signals.push(signal);
        return new Promise((r) => setTimeout(r, 10));
      },
    });
    await slot.replace();
    await slot.replace();
    await slot.settled();
    assert.equal(signals.length, 1);
    assert.equal(signals[0]!.aborted, false);
    assert.deepEqual(calls, [['dispose', 1, { version: 1, timedOut: false }]]);
  });

  test('a generation drained before its drain timeout leaves no timer behind', async () => {
    const { slot, calls } = recordingSlot({}, { drainTimeoutMs: 5_000 });
    await slot.replace();
    const before = refTimers();
    await slot.replace();
    await slot.settled();
    assert.deepEqual(calls, [['dispose', 1, { version: 1, timedOut: false }]]);
    assert.equal(refTimers(), before);
  });
});

describe('unlessAborted', () => {
  test("is the work's outcome, or the signal's reason if it aborts first, and leaves no listener on the signal", async () => {
    const gone = new AbortController();
    gone.abort(new Error('already stopped'));
    await assert.rejects(unlessAborted(gone.signal, Promise.resolve(1)), /already stopped/);

    const live = new AbortController();
    assert.equal(await unlessAborted(live.signal, Promise.resolve(2)), 2);
    await assert.rejects(unlessAborted(live.signal, Promise.reject(new Error('work failed'))), /work failed/);
    assert.equal(getEventListeners(live.signal, 'abort').length, 0, 'removed once the work settled');

    const stopping = new AbortController();
    const never = unlessAborted(stopping.signal, new Promise<number>(() => {}));
    assert.equal(getEventListeners(stopping.signal, 'abort').length, 1);
    stopping.abort(new Error('stopped'));
    await assert.rejects(never, /stopped/);
    assert.equal(getEventListeners(stopping.signal, 'abort').length, 0, 'removed once the signal aborted');
  });
});
