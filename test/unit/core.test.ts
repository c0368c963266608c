import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Backoff } from '../../src/core/backoff.js';
import { deferred } from '../../src/core/deferred.js';
import { GraftError } from '../../src/core/errors.js';
import { Generation } from '../../src/core/generation.js';
import { LeaseCounter } from '../../src/core/lease.js';
import { tryLock } from '../../src/core/lock-file.js';
import type { Fields, Logger } from '../../src/core/log.js';
import { replacePrivateFile } from '../../src/core/private-file.js';
import { slotEventLogger } from '../../src/core/slot-log.js';
import { graftVersion } from '../../src/core/version.js';
import { beginDrain, drainSignal, onDrain } from '../../src/worker/drain-hooks.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
import { goAway } from '../../src/worker/websocket-drain.js';
import { WebSocket, WebSocketServer } from 'ws';
import '../helpers/output.js';

/** Settles only if `promise` has settled by the time the microtasks queued now have run. */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return settled;
}

type Record_ = [level: string, msg: string, fields: Fields];
function capture(): { log: Logger; records: Record_[] } {
  const records: Record_[] = [];
  const log: Logger = {
    debug: (msg, fields = {}) => records.push(['debug', msg, fields]),
    info: (msg, fields = {}) => records.push(['info', msg, fields]),
    warn: (msg, fields = {}) => records.push(['warn', msg, fields]),
    error: (msg, fields = {}) => records.push(['error', msg, fields]),
    child: () => log,
  };
  return { log, records };
}

describe('leases and generations', () => {
  test('a counter is idle at once with no lease, and wakes every waiter when the last lease is released', async () => {
    const leases = new LeaseCounter();
    assert.equal(leases.active, 0);
    assert.equal(await settledNow(leases.idle()), true);
    const a = leases.acquire();
    const b = leases.acquire();
    assert.equal(leases.active, 2);
    const first = leases.idle();
    const second = leases.idle();
    a();
    assert.equal(leases.active, 1);
    assert.equal(await settledNow(first), false, 'one lease is still held');
    a();
    assert.equal(leases.active, 1, 'releasing twice counts once');
    assert.equal(await settledNow(first), false);
    b();
    assert.equal(leases.active, 0);
    assert.equal(await settledNow(first), true);
    assert.equal(await settledNow(second), true);
    // Woken once: a lease taken later makes new waiters wait again.
    const c = leases.acquire();
    const third = leases.idle();
    assert.equal(await settledNow(third), false);
    c();
    assert.equal(await settledNow(third), true);
  });

  test('a generation starts live, hands out leases that carry its version and value, and is idle once they are released', async () => {
    const value = { name: 'v' };
    const g = new Generation(7, value);
    assert.equal(g.state, 'live');
    assert.equal(g.retiredAt, undefined);
    assert.equal(g.inFlight, 0);
    assert.equal(await settledNow(g.idle()), true);
    const lease = g.acquire();
    assert.equal(lease.version, 7);
    assert.equal(lease.value, value);
    assert.equal(g.inFlight, 1);
    const idle = g.idle();
    assert.equal(await settledNow(idle), false);
    lease.release();
    lease.release();
    assert.equal(g.inFlight, 0);
    assert.equal(await settledNow(idle), true);
  });
});

describe('backoff', () => {
  test('without jitter: doubles from the first wait up to the ceiling, stays there, and starts over on reset', () => {
    const b = new Backoff(100, 1000, false);
    assert.deepEqual(
      Array.from({ length: 7 }, () => b.next()),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
    b.reset();
    assert.equal(b.next(), 100);
    assert.equal(b.delay(0), 100);
    assert.equal(b.delay(3), 800);
    assert.equal(b.delay(4), 1000);
    assert.equal(b.delay(40), 1000);
  });

  test('with jitter: each wait is drawn from the upper half of its step', () => {
    assert.equal(new Backoff(100, 1000, () => 0).delay(2), 200);
    assert.equal(new Backoff(100, 1000, () => 1).delay(2), 400);
    assert.equal(new Backoff(100, 1000, () => 0.5).delay(2), 300);
    assert.equal(new Backoff(100, 1000, () => 0.5).delay(9), 750);
    // The defaults: 250 ms first, 15 s at most, random within the step.
    const d = new Backoff();
    for (let step = 0; step < 12; step++) {
      const ceiling = Math.min(15_000, 250 * 2 ** step);
      const wait = d.delay(step);
      assert.ok(wait >= ceiling / 2 && wait <= ceiling, `step ${step}: ${wait}`);
    }
  });
});

describe('deferred', () => {
  test('settles its promise from outside; a rejection nobody awaits does not crash the process', async () => {
    const ok = deferred<number>();
    ok.resolve(3);
    assert.equal(await ok.promise, 3);
    const failed = deferred<number>();
    failed.reject(new Error('nobody listens'));
    await assert.rejects(failed.promise, /nobody listens/);
    // Unobserved: the process would end with an unhandled rejection if it counted as one.
    deferred<void>().reject(new Error('unobserved'));
    await new Promise((r) => setImmediate(r));
  });
});

describe('private files', () => {
  test('written whole with mode 0600, replacing what was there; a failed write throws and leaves no temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-private-'));
    try {
      const file = join(dir, 'state.json');
      replacePrivateFile(file, 'one');
      assert.equal(readFileSync(file, 'utf8'), 'one');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      replacePrivateFile(file, 'two');
      assert.equal(readFileSync(file, 'utf8'), 'two');
      assert.deepEqual(readdirSync(dir), ['state.json']);
      // The target is a directory (not empty): the rename fails.
      mkdirSync(join(dir, 'blocked'));
      writeFileSync(join(dir, 'blocked', 'f'), 'f');
      assert.throws(() => replacePrivateFile(join(dir, 'blocked'), 'text'), /EISDIR|ENOTEMPTY|EEXIST/);
      assert.deepEqual(readdirSync(dir).sort(), ['blocked', 'state.json'], 'no temporary file left');
      // A directory that does not exist: the write fails and nothing is left.
      // It throws what failed (the write), not an error of the cleanup of a temporary file that was never made.
      assert.throws(
        () => replacePrivateFile(join(dir, 'missing', 'f'), 'text'),
        (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'open',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lock files', () => {
  test('one holder at a time, with its pid in the file; a lock its dead holder left, or one older than the stale age, is taken over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-lock-'));
    try {
      const lock = join(dir, 'x.lock');
      const release = tryLock(lock, 60_000);
      assert.ok(release);
      assert.equal(readFileSync(lock, 'utf8'), String(process.pid));
      assert.equal(statSync(lock).mode & 0o777, 0o600);
      assert.equal(tryLock(lock, 60_000), undefined, 'held by a live process: not taken');
      release();
      assert.deepEqual(readdirSync(dir), [], 'let go: the file is gone');
      // Left by a process that is gone.
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      writeFileSync(lock, String(dead));
      const again = tryLock(lock, 60_000);
      assert.ok(again, 'a dead holder\'s lock is taken over');
      assert.equal(readFileSync(lock, 'utf8'), String(process.pid));
      again();
      // A pid given to another live process since, or a taker that died before writing its pid: the age decides.
      for (const text of [String(process.ppid), '']) {
        writeFileSync(lock, text);
        assert.equal(tryLock(lock, 60_000), undefined, `"${text}", fresh: held`);
        const old = new Date(Date.now() - 120_000);
        utimesSync(lock, old, old);
        const taken = tryLock(lock, 60_000);
        assert.ok(taken, `"${text}", older than the stale age: taken over`);
        taken();
      }
      // A failure other than the lock being held is thrown.
      assert.throws(() => tryLock(join(dir, 'missing', 'x.lock'), 60_000), /ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("graft's version is package.json's", () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(graftVersion(), pkg.version);
  assert.equal(graftVersion(), pkg.version, 'read once, the same after');
});

describe('slot event log', () => {
  const events = [
    { type: 'build', slot: 's', version: 2 },
    { type: 'commit', slot: 's', version: 2, previous: 1, buildMs: 12 },
    { type: 'reject', slot: 's', version: 3, error: new GraftError('GRAFT_CONFIG_INVALID', 'bad') },
    { type: 'drain', slot: 's', version: 1, inFlight: 4 },
    { type: 'dispose', slot: 's', version: 1, drainMs: 30, timedOut: true },
    { type: 'dispose-error', slot: 's', version: 1, error: new Error('close failed') },
  ] as const;

  test('every step with its message and the same fields, plus what the layer adds', () => {
    const { log, records } = capture();
    const logEvent = slotEventLogger(log, { build: 'B', commit: 'C', reject: 'R', drain: 'D', dispose: 'X', disposeError: 'E' }, (e) => ({ layer: e.slot }));
    for (const e of events) logEvent(e);
    assert.deepEqual(
      records.map(([level, msg]) => [level, msg]),
      [
        ['info', 'B'],
        ['info', 'C'],
        ['error', 'R'],
        ['info', 'D'],
        ['info', 'X'],
        ['error', 'E'],
      ],
    );
    assert.deepEqual(records[0]![2], { generation: 2, layer: 's' });
    assert.deepEqual(records[1]![2], { generation: 2, previous: 1, buildMs: 12, layer: 's' });
    assert.deepEqual(records[2]![2], { generation: 3, code: 'GRAFT_CONFIG_INVALID', error: 'bad', layer: 's' });
    assert.deepEqual(records[3]![2], { generation: 1, layer: 's' });
    assert.deepEqual(records[4]![2], { generation: 1, drainMs: 30, timedOut: true, layer: 's' });
    assert.deepEqual(records[5]![2], { generation: 1, error: 'close failed', layer: 's' });
  });

  test('a step without a message is not logged; without extra fields, only the common ones', () => {
    const { log, records } = capture();
    const logEvent = slotEventLogger(log, { commit: 'C' });
    for (const e of events) logEvent(e);
    assert.deepEqual(records, [['info', 'C', { generation: 2, previous: 1, buildMs: 12 }]]);
    records.length = 0;
    const silent = slotEventLogger(log, {});
    for (const e of events) silent(e);
    assert.deepEqual(records, [], 'no step has a message: nothing is logged');
  });
});

describe('drain hooks', () => {
  test('the signal aborts when the drain begins, every hook runs and is awaited, and a hook that throws is logged', async () => {
    const { log, records } = capture();
    const ran: string[] = [];
    const slow = deferred<void>();
    onDrain(() => {
      ran.push('sync');
    });
    onDrain(async () => {
      await slow.promise;
      ran.push('async');
    });
    onDrain(() => {
      throw new Error('hook failed');
    });
    const removed = onDrain(() => ran.push('removed'));
    removed();
    assert.equal(drainSignal.aborted, false);
    const drained = beginDrain(log);
    assert.equal(drainSignal.aborted, true);
    assert.equal(await settledNow(drained), false, 'the drain waits for the slow hook');
    slow.resolve();
    await drained;
    assert.deepEqual(ran.sort(), ['async', 'sync']);
    assert.equal(records.length, 1);
    assert.equal(records[0]![0], 'error');
    assert.equal(records[0]![1], 'a drain hook threw; the drain goes on');
    assert.match(String((records[0]![2].err as Error).message), /hook failed/);
  });
});

describe('a WebSocket of a draining worker (ws)', () => {
  test('goes quiet, then closes with 1001 after what the app queued; what the client sent meanwhile never reaches the app', async () => {
    const server = createServer();
    const wss = new WebSocketServer({ server });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const appGot: string[] = [];
    const serverSide = new Promise<{ ws: WebSocket; socket: Socket }>((resolve) =>
      wss.on('connection', (ws, req) => {
        ws.on('message', (m) => {
          appGot.push(String(m));
          // The app answers what it took a moment later.
          setTimeout(() => ws.send(`answer ${String(m)}`), 20);
        });
        resolve({ ws, socket: req.socket });
      }),
    );
    const client = new WebSocket(`ws://127.0.0.1:${port}`);
    const clientGot: string[] = [];
    client.on('message', (m) => clientGot.push(String(m)));
    const closed = new Promise<[number, string]>((r) => client.on('close', (code, reason) => r([code, String(reason)])));
    await new Promise((r) => client.once('open', r));
    const { socket } = await serverSide;
    const first = new Promise((r) => client.once('message', r));
    client.send('one');
    await first;
    client.send('two');
    const quiet = new QuietWatch(50);
    goAway(socket, quiet);
    client.send('three');
    assert.deepEqual(await closed, [1001, 'server going away']);
    assert.ok(appGot.includes('one'));
    assert.ok(!appGot.includes('three'), `the app got ${appGot.join(', ')}`);
    for (const m of appGot) assert.ok(clientGot.includes(`answer ${m}`), `the answer to ${m} came before the close frame`);
    wss.close();
    server.close();
  });

  test('a socket that carries no open WebSocket is left alone', async () => {
    const server = createServer((_req, res) => res.end('plain'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const sockets: Socket[] = [];
    server.on('connection', (s) => sockets.push(s));
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), 'plain');
    const quiet = new QuietWatch(10);
    goAway(sockets[0]!, quiet);
    assert.equal(sockets[0]!.isPaused(), false, 'not paused: not a WebSocket');
    server.closeAllConnections();
    server.close();
  });
});
