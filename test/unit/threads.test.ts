import assert from 'node:assert/strict';
import { afterEach, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel, Worker } from 'node:worker_threads';
import { HUB_CHANNEL } from '../../src/config/threads/messages.js';
import { deferred } from '../../src/core/deferred.js';
import { whenLoopStarted } from '../../src/jobs/loop.js';
import { config as processStore, type ConfigStore } from '../../src/config/store.js';
import '../helpers/output.js';

// The process-wide store, as the worker runtime and a process without a master use it.
const config = processStore as unknown as ConfigStore<{ n: number; boom?: unknown }>;
const boot = fileURLToPath(new URL('../fixtures/threads/ts-thread.mjs', import.meta.url));
const READ = 0;
const HEARD = 1;
const LOOPED = 2;
const RELEASE = 3;

interface Thread {
  worker: Worker;
  shared: Int32Array;
  id: number;
  next(match: (m: unknown) => boolean): Promise<unknown>;
}

const threads: Worker[] = [];

function startThread(role: string, module = 'unit-thread.ts'): Thread {
  const shared = new Int32Array(new SharedArrayBuffer(16));
  const worker = new Worker(boot, { workerData: { role, shared, module: new URL(`../fixtures/threads/${module}`, import.meta.url).href } });
  threads.push(worker);
  const next = (match: (m: unknown) => boolean) =>
    new Promise<unknown>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (!match(m)) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(m);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  return { worker, shared, id: worker.threadId, next };
}

const started = (m: unknown) => typeof m === 'object' && m !== null && 'started' in m;
const spinning = (m: unknown) => m === 'spinning';

/** Wait until a cell of the thread's shared memory holds value (the thread writes it without turning its event loop). */
async function until(shared: Int32Array, cell: number, value: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Atomics.load(shared, cell) !== value) {
    if (Date.now() > deadline) throw new Error(`cell ${cell} holds ${Atomics.load(shared, cell)}, not ${value}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Resolves when the thread acknowledges a change to the main thread. Its
 * subscriber's store into HEARD comes before its acknowledgement is posted;
 * a change started in between would still see the thread as not answering.
 */
function acknowledged(thread: number): Promise<void> {
  const channel = new BroadcastChannel(HUB_CHANNEL);
  return new Promise<void>((resolve) => {
    channel.onmessage = (event) => {
      const m = event.data as { graft?: string; thread?: number };
      if (m.graft !== 'ack' || m.thread !== thread) return;
      channel.close();
      resolve();
    };
  });
}

let n = 1;
function change(extra: Record<string, unknown> = {}, options: { threadTimeoutMs?: number; decision?: Promise<boolean>; onValid?: () => void } = {}) {
  const value = ++n;
  return { n: value, outcome: config.apply({ source: 'test', read: () => ({ n: value, ...extra }), ...options }) };
}

describe('config in worker threads', () => {
  before(() => {
    config.adopt({ n: 1 }, { version: 1, hash: 'h1', source: 'test' });
  });
  afterEach(async () => {
    await Promise.all(threads.splice(0).map((w) => w.terminate()));
  });

  test('a thread reads the process snapshot at once; a change resolves only after its subscriber ran', async () => {
    const t = startThread('idle');
    assert.deepEqual(await t.next(started), { started: t.id, n });
    const { n: value, outcome } = change();
    assert.deepEqual(await outcome, []);
    assert.equal(Atomics.load(t.shared, HEARD), value, 'the thread subscriber ran before the change resolved');
    t.worker.postMessage('read');
    await until(t.shared, READ, value);
  });

  test('a thread created before a change that imports graft after it reads the newer version', async () => {
    const t = startThread('late', 'late-thread.ts');
    await t.next((m) => m === 'created');
    const { n: value, outcome } = change();
    await outcome;
    t.worker.postMessage('go');
    assert.deepEqual(await t.next((m) => typeof m === 'object'), { n: value, version: config.version });
  });

  test('a thread that finds no board in its environment gets it from the main thread on its first read', async () => {
    const t = startThread('orphan', 'orphan-thread.ts');
    assert.deepEqual(await t.next((m) => typeof m === 'object'), { n, version: config.version });
  });

  test('a busy thread reads the new version at once; the change waits for its subscribers', async () => {
    const t = startThread('spin');
    await t.next(spinning);
    let settled = false;
    const { n: value, outcome } = change();
    void outcome.then(() => (settled = true));
    // The thread's event loop never turns while it spins, yet its reads switch.
    await until(t.shared, READ, value);
    assert.equal(settled, false, 'the change waits for the busy thread');
    assert.notEqual(Atomics.load(t.shared, HEARD), value);
    Atomics.store(t.shared, RELEASE, 1);
    assert.deepEqual(await outcome, []);
    assert.equal(Atomics.load(t.shared, HEARD), value);
  });

  test('a thread busy for longer than the change may wait is reported, and hears the change once free', { timeout: 30_000 }, async () => {
    const t = startThread('spin');
    await t.next(spinning);
    const { n: value, outcome } = change({}, { threadTimeoutMs: 100 });
    const failures = await outcome;
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.thread, t.id);
    assert.equal(failures[0]!.code, 'GRAFT_THREAD_BUSY');
    assert.match(failures[0]!.error, /did not take config version \d+ within 100 ms/);
    assert.equal(config.version, config.snapshotInfo.version);
    await until(t.shared, READ, value);
    // Until it answers, later changes do not wait for it again.
    const { n: next, outcome: nextOutcome } = change({}, { threadTimeoutMs: 60_000 });
    assert.deepEqual(await nextOutcome, []);
    await until(t.shared, READ, next);
    const answered = acknowledged(t.id);
    Atomics.store(t.shared, RELEASE, 1);
    await answered;
    assert.equal(Atomics.load(t.shared, HEARD), next);
    // It answered: from now on changes wait for it as for any thread.
    const { n: last, outcome: lastOutcome } = change();
    assert.deepEqual(await lastOutcome, []);
    assert.equal(Atomics.load(t.shared, HEARD), last);
  });

  test('a thread without subscribers is not waited for; it reads the new version when it wakes', { timeout: 30_000 }, async () => {
    const t = startThread('park');
    await t.next(started);
    const { n: value, outcome } = change({}, { threadTimeoutMs: 60_000 });
    assert.deepEqual(await outcome, []);
    Atomics.store(t.shared, RELEASE, 1);
    Atomics.notify(t.shared, RELEASE);
    await until(t.shared, READ, value);
  });

  test('a thread that exits in the middle of a change stops counting', async () => {
    const t = startThread('spin-forever');
    await t.next(spinning);
    let settled = false;
    const { n: value, outcome } = change({}, { threadTimeoutMs: 120_000 });
    void outcome.then(() => (settled = true));
    await until(t.shared, READ, value);
    assert.equal(settled, false);
    await t.worker.terminate();
    assert.deepEqual(await outcome, [], 'settled without waiting out the bound, with nothing reported');
  });

  test('a thread subscriber that throws is reported with its thread; the change stays live', async () => {
    const t = startThread('idle');
    await t.next(started);
    const { n: value, outcome } = change({ boom: 1 });
    const failures = await outcome;
    assert.deepEqual(failures, [{ path: 'boom', error: `thread ${t.id} refuses boom`, thread: t.id }]);
    assert.equal(config.current.n, value);
    t.worker.postMessage('read');
    await until(t.shared, READ, value);
    // Taking boom away touches it too: the same subscriber runs, and throws, again.
    const { outcome: cleared } = change();
    assert.deepEqual((await cleared).map((f) => f.path), ['boom']);
  });

  test('a version dropped before its commit never reaches a thread', async () => {
    const t = startThread('idle');
    const { n: live } = (await t.next(started)) as { n: number };
    const decision = deferred<boolean>();
    const { outcome } = change({}, { decision: decision.promise });
    decision.resolve(false);
    await assert.rejects(outcome, { code: 'GRAFT_CONFIG_ABORTED' });
    n = live;
    // The thread answers a message by reading again.
    Atomics.store(t.shared, READ, -1);
    t.worker.postMessage('read');
    await until(t.shared, READ, live);
    assert.equal(config.current.n, live);
  });

  test('a thread that starts while a version is prepared reads the live one, then the prepared one once it commits', async () => {
    const live = n;
    const decision = deferred<boolean>();
    const prepared = deferred<void>();
    const { n: value, outcome } = change({}, { decision: decision.promise, onValid: () => prepared.resolve() });
    await prepared.promise;
    const t = startThread('idle');
    assert.deepEqual(await t.next(started), { started: t.id, n: live }, 'a prepared version is not live anywhere yet');
    decision.resolve(true);
    assert.deepEqual(await outcome, []);
    assert.equal(Atomics.load(t.shared, HEARD), value, 'the change waited for the thread that joined in between');
  });

  test('a snapshot that cannot be handed to threads is refused while threads hold config; the live one stays', async () => {
    const t = startThread('idle');
    const { n: live } = (await t.next(started)) as { n: number };
    const { outcome } = change({ handler: () => 'not cloneable' });
    await assert.rejects(outcome, (err: { code?: string; message?: string }) => err.code === 'GRAFT_CONFIG_INVALID' && /cannot be handed to worker threads/.test(err.message ?? ''));
    n = live;
    assert.equal(config.current.n, live);
    Atomics.store(t.shared, READ, -1);
    t.worker.postMessage('read');
    await until(t.shared, READ, live);
  });

  test('a loop in a thread runs on each new snapshot, and stops when the worker drains', async () => {
    const t = startThread('loop');
    await t.next(started);
    await until(t.shared, LOOPED, n);
    // A job worker whose loops run in threads is ready too: its main thread hears of the first one.
    await whenLoopStarted();
    const { n: value, outcome } = change();
    await outcome;
    await until(t.shared, LOOPED, value);
    await config.stopThreadLoops();
    // Stopped: a further change reaches the thread's reads but no iteration runs.
    const { n: later, outcome: laterOutcome } = change();
    await laterOutcome;
    t.worker.postMessage('read');
    await until(t.shared, READ, later);
    assert.equal(Atomics.load(t.shared, LOOPED), value);
  });
});
