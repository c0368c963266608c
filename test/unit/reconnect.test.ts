import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { Backoff } from '../../src/core/backoff.js';
import { deferred } from '../../src/core/deferred.js';
import { GraftError, errorMessage } from '../../src/core/errors.js';
import type { Fields, Level, Logger } from '../../src/core/log.js';
import { ReconnectLoop, type ReconnectOptions, type ReconnectSession } from '../../src/core/reconnect.js';
import { followReconnects, natsConnect } from '../../src/net/nats-connect.js';
import { TcpGate } from '../helpers/stores.js';

interface Line {
  level: Level;
  msg: string;
  fields: Fields;
}

/** A logger that keeps every line, debug included; `next` finds one at index `from` or later, or waits for it. */
function capture(): { log: Logger; lines: Line[]; next(match: (l: Line) => boolean, timeoutMs?: number, from?: number): Promise<Line> } {
  const lines: Line[] = [];
  const waiters = new Set<(l: Line) => void>();
  const line = (level: Level) => (msg: string, fields: Fields = {}) => {
    const l = { level, msg, fields };
    lines.push(l);
    for (const w of waiters) w(l);
  };
  const log: Logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error'), child: () => log };
  return {
    log,
    lines,
    next: (match, timeoutMs = 5000, from = 0) =>
      new Promise((resolve, reject) => {
        const found = lines.slice(from).find(match);
        if (found) return resolve(found);
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no log line matched within ${timeoutMs} ms; lines: ${JSON.stringify(lines.map((l) => l.msg))}`));
        }, timeoutMs);
        const check = (l: Line) => {
          if (!match(l)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(l);
        };
        waiters.add(check);
      }),
  };
}

const classify = (err: unknown) => new GraftError('GRAFT_STORE_UNREACHABLE', `test://x: ${errorMessage(err)}`, { cause: err });

function loopOf(log: Logger, backoff: Backoff, session: ReconnectOptions['session'], extra: Partial<ReconnectOptions> = {}): ReconnectLoop {
  return new ReconnectLoop({ what: 'test store', url: 'test://x', log, backoff, classify, session, ...extra });
}

/** The lines the loop wrote about its connection, as [level, message, attempts, retryInMs]. */
const summary = (lines: Line[]) => lines.map((l) => [l.level, l.msg, l.fields.attempts, l.fields.retryInMs]);

describe('the reconnect loop', () => {
  test('waits the backoff sequence between attempts, starts it over once connected, and warns by one rule', async () => {
    const { log, lines, next } = capture();
    // The upper end of each step: 4, 8, 16, 32, 32, … ms.
    const backoff = new Backoff(4, 32, () => 1);
    const started: number[] = [];
    const failures: GraftError[] = [];
    let held: ReconnectSession | undefined;
    const script: Array<(s: ReconnectSession) => Promise<void>> = [
      ...[1, 2, 3].map(() => async () => Promise.reject(new Error('connection refused'))),
      async () => Promise.reject(new GraftError('GRAFT_STORE_AUTH', 'test://x: bad password')),
      ...[5, 6, 7, 8, 9, 10, 11, 12].map(() => async () => Promise.reject(new Error('connection refused'))),
      async (s) => {
        s.connected({ revision: '7' });
        await Promise.resolve();
        throw new Error('reset by peer');
      },
      async () => Promise.reject(new Error('connection refused')),
      async (s) => {
        s.connected();
        held = s;
        await s.ended;
      },
    ];
    const loop = loopOf(log, backoff, (s) => {
      started.push(performance.now());
      return script[started.length - 1]!(s);
    }, { meanwhile: 'serving meanwhile', onFailure: (e) => failures.push(e) });
    assert.deepEqual(loop.status(), { url: 'test://x', connected: false, since: loop.status().since, attempts: 0 });
    loop.start();
    const connected = next((l) => l.msg === 'test store connected' && l.fields.afterAttempts === 1);
    const firstFailure = await next((l) => l.fields.attempts === 1);
    assert.equal(firstFailure.level, 'warn');
    await connected;
    const up = loop.status();
    assert.deepEqual(up, { url: 'test://x', connected: true, since: up.since, attempts: 0 });
    assert.ok(held && !held.signal.aborted);

    assert.deepEqual(summary(lines), [
      ['warn', 'test store unreachable; retrying (serving meanwhile)', 1, 4],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 2, 8],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 3, 16],
      // Another failure than the last warning warns...
      ['warn', 'test store refused the credentials; retrying (serving meanwhile)', 4, 32],
      ['warn', 'test store unreachable; retrying (serving meanwhile)', 5, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 6, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 7, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 8, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 9, 32],
      // ...and so does every tenth attempt in a row.
      ['warn', 'test store unreachable; retrying (serving meanwhile)', 10, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 11, 32],
      ['debug', 'test store unreachable; retrying (serving meanwhile)', 12, 32],
      ['info', 'test store connected', undefined, undefined],
      // Losing a connection warns; the backoff starts over from its first step.
      ['warn', 'test store disconnected; reconnecting (serving meanwhile)', undefined, 4],
      // A failure after a loss is a new outage's first attempt: it warns (it says why the link stays down).
      ['warn', 'test store unreachable; retrying (serving meanwhile)', 1, 8],
      ['info', 'test store connected', undefined, undefined],
    ]);
    assert.equal(lines[12]!.fields.revision, '7');
    assert.equal(lines[12]!.fields.afterAttempts, 12);
    assert.equal(lines[3]!.fields.code, 'GRAFT_STORE_AUTH');
    assert.equal(lines[0]!.fields.code, 'GRAFT_STORE_UNREACHABLE');
    assert.equal(lines[0]!.fields.error, 'test://x: connection refused');
    // Every failure is told to the owner, classified once.
    assert.deepEqual(failures.map((f) => f.code), [...Array(3).fill('GRAFT_STORE_UNREACHABLE'), 'GRAFT_STORE_AUTH', ...Array(10).fill('GRAFT_STORE_UNREACHABLE')]);
    // The waits between sessions are the logged ones (a timer never fires early; 1 ms for its rounding).
    const waits = lines.filter((l) => l.fields.retryInMs !== undefined).map((l) => l.fields.retryInMs as number);
    assert.equal(started.length, waits.length + 1);
    for (let i = 0; i < waits.length; i++) assert.ok(started[i + 1]! - started[i]! >= waits[i]! - 1, `wait ${i}: ${started[i + 1]! - started[i]!} ms < ${waits[i]} ms`);
    await loop.close();
    assert.equal(held.signal.aborted, true);
  });

  test('status during an outage: not connected since the loss, the attempts, the last error', async () => {
    const { log, next } = capture();
    let sessions = 0;
    const loop = loopOf(log, new Backoff(2, 2, () => 1), async (s) => {
      sessions++;
      if (sessions === 1) {
        s.connected();
        throw new Error('reset by peer');
      }
      throw new Error('connection refused');
    }, { fields: () => ({ revision: 'r1' }) });
    loop.start();
    const third = await next((l) => l.fields.attempts === 3);
    assert.equal(third.fields.revision, 'r1', 'every line carries the owner\'s fields as they are now');
    const down = loop.status();
    assert.equal(down.connected, false);
    assert.ok(down.attempts >= 3);
    assert.deepEqual(down.lastError, { code: 'GRAFT_STORE_UNREACHABLE', error: 'test://x: connection refused' });
    assert.equal(loop.lastError?.message, 'test://x: connection refused');
    await loop.close();
  });

  test('close() ends the wait at once, and ends a session through its signal, waiting for it to close its connection', async () => {
    const { log, next } = capture();
    let sessions = 0;
    const waiting = loopOf(log, new Backoff(60_000, 60_000, () => 1), async () => {
      sessions++;
      throw new Error('connection refused');
    });
    waiting.start();
    await next((l) => l.fields.retryInMs === 60_000);
    const t0 = performance.now();
    await waiting.close();
    assert.ok(performance.now() - t0 < 1000, `close took ${performance.now() - t0} ms during a 60 s wait`);
    assert.equal(sessions, 1, 'no attempt after close()');
    waiting.start();
    assert.equal(sessions, 1, 'a closed loop does not start again');

    let cleaned = false;
    let session: ReconnectSession | undefined;
    const open = loopOf(log, new Backoff(), async (s) => {
      session = s;
      s.connected();
      await s.ended;
      await new Promise((r) => setTimeout(r, 20)); // closing the connection takes a while
      cleaned = true;
    });
    open.start();
    await next((l) => l.msg === 'test store connected');
    await open.close();
    assert.equal(session?.signal.aborted, true);
    assert.equal(cleaned, true, 'close() returned only after the session closed its connection');
    // What a session says after close() counts no more.
    session!.lost(new Error('late'));
    assert.equal(open.status().connected, true);
  });

  test('a client that reconnects by itself: its drops and dials show in the status and the log, and no second session starts', async () => {
    const { log, lines, next } = capture();
    let sessions = 0;
    const loop = loopOf(log, new Backoff(), async (s) => {
      sessions++;
      s.connected();
      s.lost(new Error('lost the connection to 127.0.0.1:4222'));
      for (let i = 0; i < 10; i++) s.failed();
      const during = loop.status();
      assert.equal(during.connected, false);
      assert.equal(during.attempts, 10);
      s.connected({ server: '127.0.0.1:4222' });
      await s.ended;
    });
    loop.start();
    await next((l) => l.msg === 'test store connected' && l.fields.server !== undefined);
    assert.equal(sessions, 1);
    assert.deepEqual(summary(lines), [
      ['info', 'test store connected', undefined, undefined],
      ['warn', 'test store disconnected; reconnecting', undefined, undefined],
      // The same failure as the warning: quiet, but for the tenth.
      ...Array.from({ length: 9 }, (_, i) => ['debug', 'test store unreachable; retrying', i + 1, undefined]),
      ['warn', 'test store unreachable; retrying', 10, undefined],
      ['info', 'test store connected', undefined, undefined],
    ]);
    assert.deepEqual(loop.status().attempts, 0);
    await loop.close();
  });

  // Against a real NATS server (5 s): not repeated against each mutant of `npm run test:mutation`.
  test('a NATS client cut off from its server: the loop hears of its own reconnect through followReconnects', { skip: process.env.__STRYKER_ACTIVE_MUTANT__ !== undefined }, async () => {
    const gate = await new TcpGate(4222).open();
    const { log, lines, next } = capture();
    let sessions = 0;
    const loop = loopOf(log, new Backoff(), async (s) => {
      sessions++;
      const nc = await natsConnect({ server: `127.0.0.1:${gate.port}`, user: undefined, password: undefined }, 'graft reconnect test', true, 2000);
      try {
        s.connected();
        void followReconnects(nc, s);
        await Promise.race([nc.closed(), s.ended]);
      } finally {
        await nc.close();
      }
    });
    try {
      loop.start();
      await next((l) => l.msg === 'test store connected');
      await gate.cut();
      const lost = await next((l) => l.msg === 'test store disconnected; reconnecting', 10_000);
      assert.equal(lost.level, 'warn');
      assert.match(String(lost.fields.error), /lost the connection to 127\.0\.0\.1:\d+/);
      await next((l) => l.fields.attempts === 1, 10_000);
      assert.equal(loop.status().connected, false);
      const from = lines.length;
      await gate.open();
      const again = await next((l) => l.msg === 'test store connected', 10_000, from);
      assert.match(String(again.fields.server), /127\.0\.0\.1:\d+/);
      assert.deepEqual([loop.status().connected, loop.status().attempts, sessions], [true, 0, 1]);
    } finally {
      await loop.close();
      await gate.cut();
    }
  });
});

describe('the reconnect loop: closing, and what a session says once over', () => {
  test('close() of a loop never started returns at once', async () => {
    const { log, lines } = capture();
    const loop = loopOf(log, new Backoff(), async () => {});
    await loop.close();
    assert.deepEqual(lines, []);
  });

  test('close() of a session that closes its connection at once: no warning, and no timer left holding the process', async () => {
    const { log, lines, next } = capture();
    const loop = loopOf(log, new Backoff(), async (s) => {
      s.connected();
      await s.ended;
    });
    loop.start();
    await next((l) => l.msg === 'test store connected');
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await loop.close();
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timers, "close()'s wait for the session holds no timer open");
    assert.deepEqual(summary(lines), [['info', 'test store connected', undefined, undefined]]);
  });

  test('a session that returns by itself is over: its signal aborts, `ended` resolves, and nothing is left listening', async () => {
    const { log } = capture();
    const sessions: ReconnectSession[] = [];
    const second = deferred<void>();
    const loop = loopOf(log, new Backoff(1, 1, false), async (s) => {
      sessions.push(s);
      if (sessions.length === 1) throw new Error('connection refused');
      second.resolve();
      await s.ended;
    });
    loop.start();
    await second.promise;
    const first = sessions[0]!;
    assert.equal(first.signal.aborted, true);
    await first.ended;
    assert.equal(getEventListeners(first.signal, 'abort').length, 0);
    assert.equal(sessions[1]!.signal.aborted, false);
    await loop.close();
    assert.equal(sessions[1]!.signal.aborted, true);
  });

  test('a loop whose sessions keep failing leaves no listener behind per attempt', async () => {
    const { log, next } = capture();
    const loop = loopOf(log, new Backoff(1, 1, false), async () => {
      throw new Error('connection refused');
    });
    // What close() aborts: each session listens to it while it runs, and no longer.
    const stop = (loop as unknown as { stop: AbortController }).stop.signal;
    loop.start();
    try {
      await next((l) => l.fields.attempts === 15);
      // Between two attempts, only the backoff's wait listens.
      assert.ok(getEventListeners(stop, 'abort').length <= 1, `${getEventListeners(stop, 'abort').length} listeners after 15 attempts`);
    } finally {
      await loop.close();
    }
  });

  test('what a session says once close() aborted it counts no more, though it still runs', async () => {
    const { log, lines, next } = capture();
    const reported = deferred<void>();
    const loop = loopOf(log, new Backoff(), async (s) => {
      s.connected();
      await s.ended;
      s.lost(new Error('closing'));
      s.failed(new Error('closing'));
      s.connected();
      reported.resolve();
    });
    loop.start();
    await next((l) => l.msg === 'test store connected');
    await loop.close();
    await reported.promise;
    assert.equal(loop.status().connected, true);
    assert.deepEqual(summary(lines), [['info', 'test store connected', undefined, undefined]]);
  });

  test("a connected session's failed() is no failed attempt: a client's own dials count only while it is down", async () => {
    const { log, lines, next } = capture();
    const loop = loopOf(log, new Backoff(), async (s) => {
      s.connected();
      s.failed(new Error('a dial of a client that is connected'));
      await s.ended;
    });
    loop.start();
    await next((l) => l.msg === 'test store connected');
    assert.deepEqual(loop.status(), { url: 'test://x', connected: true, since: loop.status().since, attempts: 0 });
    assert.deepEqual(summary(lines), [['info', 'test store connected', undefined, undefined]]);
    await loop.close();
  });

  test('connected twice in a row: connected since the first time', async () => {
    const { log, next } = capture();
    let session: ReconnectSession | undefined;
    const loop = loopOf(log, new Backoff(), async (s) => {
      session = s;
      s.connected();
      await s.ended;
    });
    loop.start();
    await next((l) => l.msg === 'test store connected');
    const since = loop.status().since;
    // The clock moves on (`since` is to the millisecond) before the client says it again.
    while (new Date().toISOString() === since) await new Promise((r) => setImmediate(r));
    session!.connected({ server: 'b' });
    await next((l) => l.fields.server === 'b');
    assert.equal(loop.status().since, since);
    await loop.close();
  });
});
