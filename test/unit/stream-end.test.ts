import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
import { endAtBoundary, type EndableStream, type StreamProtocol } from '../../src/worker/stream-end.js';
import { QUIET_MS, quietTimePassed, writingAtEachLook } from '../helpers/quiet.js';
import { responding } from '../helpers/responding.js';
import { within } from '../helpers/within.js';

/** One request to a node:http server of its own: the server's response, and the body the client reads to its end; the server is closed once the test is over. */
async function exchange(t: TestContext) {
  const server = await responding('utf8');
  t.after(() => server.close());
  return server.exchange();
}

/**
 * A protocol of lines, each message a line: what endAtBoundary asks of it,
 * and how often, is counted. It owns a stream once its headers are out
 * (unless told it owns none), is between messages after a newline (or when
 * told so), and ends a stream by ending it (unless told to do it later).
 */
function lines(stream: EndableStream & { end(): unknown }, options: { owns?: boolean; endsLater?: boolean } = {}) {
  const counts = { owns: 0, quietEnds: 0, ends: 0 };
  let last = '';
  const state = {
    /** Whether it is between messages regardless of what was written (as a protocol that learns of a boundary later). */
    between: undefined as boolean | undefined,
    /** What quietEnds() answers. */
    quietEnds: true,
  };
  const protocol: StreamProtocol = {
    owns: () => {
      counts.owns++;
      return stream.headersSent ? (options.owns ?? true) : undefined;
    },
    wrote: (chunk) => {
      last = String(chunk);
    },
    atBoundary: () => state.between ?? last.endsWith('\n'),
    quietEnds: () => {
      counts.quietEnds++;
      return state.quietEnds;
    },
    end: () => {
      counts.ends++;
      if (!options.endsLater) stream.end();
    },
    endedMessage: 'the line stream ended',
  };
  return { protocol, counts, state };
}

/** A turn of the event loop: what endAtBoundary deferred to the next turn has run. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('a stream is ended at a boundary between its messages', { timeout: 20_000 }, () => {
  test('right after a write that leaves it between messages (on the next turn), never after one that leaves a message half-written', async (t) => {
    const x = await exchange(t);
    const p = lines(x.res);
    endAtBoundary(x.res, p.protocol, new QuietWatch(60_000));
    x.res.write('one\ntw');
    await nextTurn();
    assert.equal(p.counts.ends, 0, 'half a message out: not ended');
    assert.equal(x.res.writableEnded, false);
    x.res.write('o\n');
    // Written in the same turn: it goes out first, and leaves the stream half-way through a message again.
    x.res.write('thr');
    await nextTurn();
    assert.equal(p.counts.ends, 0);
    x.res.write('ee\n');
    x.res.write('four\n');
    await nextTurn();
    assert.equal(p.counts.ends, 1);
    assert.equal(await x.body, 'one\ntwo\nthree\nfour\n');
  });

  test('a stream the protocol does not own is never ended: not after a boundary, not by tryEnd, not once quiet', async (t) => {
    const x = await exchange(t);
    x.res.flushHeaders();
    const p = lines(x.res, { owns: false });
    const quiet = new QuietWatch(QUIET_MS);
    const ending = endAtBoundary(x.res, p.protocol, quiet);
    x.res.write('one\n');
    await nextTurn();
    ending.tryEnd();
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 0);
    assert.equal(x.res.writableEnded, false);
    x.res.end('two\n');
    assert.equal(await x.body, 'one\ntwo\n');
  });

  test('the protocol is asked at once whether the stream is its own, and once it has answered, never again', async (t) => {
    const x = await exchange(t);
    const p = lines(x.res);
    const quiet = new QuietWatch(60_000);
    endAtBoundary(x.res, p.protocol, quiet);
    assert.equal(p.counts.owns, 1, 'asked at once');
    x.res.write('on');
    // The first write put its headers out: asked again, and it answers now.
    assert.equal(p.counts.owns, 2);
    x.res.write('e');
    x.res.write('\n');
    await nextTurn();
    assert.equal(p.counts.owns, 2, 'not asked again once it answered');
    assert.equal(p.counts.ends, 1);

    const y = await exchange(t);
    y.res.flushHeaders();
    const q = lines(y.res);
    endAtBoundary(y.res, q.protocol, quiet);
    assert.equal(q.counts.owns, 1, 'its headers were out: answered at once');
    y.res.write('a');
    y.res.write('b');
    assert.equal(q.counts.owns, 1);
  });

  test('tryEnd ends the stream only if the protocol owns it and it is between messages', async (t) => {
    const x = await exchange(t);
    const y = await exchange(t);
    x.res.flushHeaders();
    y.res.flushHeaders();
    const quiet = new QuietWatch(60_000);
    const owned = lines(x.res);
    const ownedEnding = endAtBoundary(x.res, owned.protocol, quiet);
    owned.state.between = false;
    ownedEnding.tryEnd();
    assert.equal(owned.counts.ends, 0, 'owned, but in the middle of a message');
    const other = lines(y.res, { owns: false });
    const otherEnding = endAtBoundary(y.res, other.protocol, quiet);
    other.state.between = true;
    otherEnding.tryEnd();
    assert.equal(other.counts.ends, 0, 'between messages, but not owned');
    owned.state.between = true;
    ownedEnding.tryEnd();
    assert.equal(owned.counts.ends, 1);
    assert.equal(x.res.writableEnded, true);
    ownedEnding.tryEnd();
    assert.equal(owned.counts.ends, 1, 'ended once');
    assert.equal(y.res.writableEnded, false);
  });

  test('a stream that has already ended, or was destroyed, is left as it is', async (t) => {
    const x = await exchange(t);
    const y = await exchange(t);
    const quiet = new QuietWatch(60_000);
    x.res.end('done\n');
    assert.equal(x.res.destroyed, false, 'ended, and not destroyed yet');
    const ended = lines(x.res);
    endAtBoundary(x.res, ended.protocol, quiet);
    assert.equal(Object.hasOwn(x.res, 'write'), false, 'its write() is not taken over');
    assert.equal(ended.counts.owns, 0, 'the protocol is not asked');

    y.res.destroy();
    assert.equal(y.res.writableEnded, false, 'destroyed, not ended');
    const destroyed = lines(y.res);
    endAtBoundary(y.res, destroyed.protocol, quiet);
    assert.equal(Object.hasOwn(y.res, 'write'), false);
    assert.equal(destroyed.counts.owns, 0);
    assert.equal(await x.body, 'done\n');
  });

  test('a write after the end reaches nobody: its callback, wherever it is, is told why, and a write without one returns false', async (t) => {
    const x = await exchange(t);
    const p = lines(x.res);
    endAtBoundary(x.res, p.protocol, new QuietWatch(60_000));
    x.res.write('last\n');
    await nextTurn();
    assert.equal(p.counts.ends, 1);
    const told = deferred<unknown>();
    assert.equal(
      x.res.write('late\n', 'utf8', (err) => told.resolve(err)),
      false,
    );
    const err = (await within(told.promise, 'the callback of a write with an encoding')) as { code?: string; message?: string };
    assert.equal(err.code, 'GRAFT_STREAM_ENDED');
    assert.match(String(err.message), /the line stream ended/);
    assert.equal(x.res.write('later\n'), false);
    assert.equal(await x.body, 'last\n');
  });
});

describe('a stream that has written nothing for the quiet time', { timeout: 20_000 }, () => {
  test('is not ended while its headers are not out, and ends at the first quiet time after they are', async (t) => {
    const x = await exchange(t);
    const p = lines(x.res);
    const quiet = new QuietWatch(QUIET_MS);
    endAtBoundary(x.res, p.protocol, quiet);
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 0, 'not ended before its headers are out');
    assert.ok(p.counts.owns >= 2, 'asked again once quiet');
    x.res.flushHeaders();
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 1);
    assert.equal(await x.body, '');
  });

  test('is not ended while the protocol says it may not be, and ends at the first quiet time after it says it may', async (t) => {
    const x = await exchange(t);
    x.res.write('half a mess');
    const p = lines(x.res);
    p.state.quietEnds = false;
    const quiet = new QuietWatch(QUIET_MS);
    endAtBoundary(x.res, p.protocol, quiet);
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 0);
    assert.ok(p.counts.quietEnds >= 1, 'asked');
    p.state.quietEnds = true;
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 1);
    assert.equal(await x.body, 'half a mess');
  });

  test('a stream that keeps writing is never quiet, however long a message takes', async (t) => {
    const x = await exchange(t);
    const quiet = new QuietWatch(QUIET_MS);
    const writer = writingAtEachLook(quiet, () => x.res.write('.'));
    const p = lines(x.res);
    endAtBoundary(x.res, p.protocol, quiet);
    writer.start();
    await writer.done;
    assert.equal(p.counts.ends, 0, 'not ended while it writes');
    assert.equal(x.res.writableEnded, false);
    await quietTimePassed(quiet);
    assert.equal(p.counts.ends, 1, 'ended once it stopped');
    assert.match(await x.body, /^\.+$/);
  });

  test('a stream that ended meanwhile (graft ended it, the app ended it, or it was destroyed) is looked at no more', async (t) => {
    const quiet = new QuietWatch(QUIET_MS);
    // Ended by graft, after a boundary, with a protocol that ends it in its words a moment later.
    const x = await exchange(t);
    // Destroyed.
    const y = await exchange(t);
    // Ended by the app, while the client still sends: an HTTP/2 stream half-closed.
    const server = http2.createServer();
    const stream = deferred<http2.ServerHttp2Stream>();
    server.on('stream', (s) => {
      // The app reads the upload: the stream stays open until the client ends it.
      s.resume();
      stream.resolve(s);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    session.on('error', () => {});
    try {
      const upload = session.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
      upload.on('error', () => {});
      const h2 = await stream.promise;
      h2.respond({ ':status': 200 });

      const byGraft = lines(x.res, { endsLater: true });
      const byGraftEnding = endAtBoundary(x.res, byGraft.protocol, quiet);
      const destroyed = lines(y.res);
      y.res.flushHeaders();
      const destroyedEnding = endAtBoundary(y.res, destroyed.protocol, quiet);
      const byApp = lines(h2);
      const byAppEnding = endAtBoundary(h2, byApp.protocol, quiet);

      x.res.write('one\n');
      await nextTurn();
      assert.equal(byGraft.counts.ends, 1);
      assert.equal(x.res.writableEnded, false, 'its protocol ends it later');
      y.res.destroy();
      h2.end('bye\n');
      assert.equal(h2.destroyed, false, 'ended, not destroyed');

      await quietTimePassed(quiet);
      assert.equal(byGraft.counts.quietEnds, 0);
      assert.equal(destroyed.counts.quietEnds, 0);
      assert.equal(byApp.counts.quietEnds, 0);
      assert.equal(byGraft.counts.ends + destroyed.counts.ends + byApp.counts.ends, 1);
      assert.equal(h2.destroyed, false);
      // Nor is any of them ended (again) by a boundary the protocol learns of now.
      for (const p of [byGraft, destroyed, byApp]) p.state.between = true;
      for (const ending of [byGraftEnding, destroyedEnding, byAppEnding]) ending.tryEnd();
      assert.deepEqual([byGraft.counts.ends, destroyed.counts.ends, byApp.counts.ends], [1, 0, 0]);
      x.res.end();
      assert.equal(await x.body, 'one\n');
    } finally {
      session.destroy();
      server.close();
    }
  });
});
