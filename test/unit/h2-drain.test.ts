import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import { HttpDrain } from '../../src/worker/http-drain.js';
import { within } from '../helpers/within.js';

/**
 * The quiet time, and so the bound on waiting for a PING's answer: out of
 * reach, so a drain that settles here did not wait for a bound.
 */
const drainOptions = { idleCloseMs: 60_000, lingerMs: 100, callGraceMs: 60_000 };


/** An h2c server tracked by graft's drain; `respond` answers each stream. */
async function served(respond: (stream: http2.ServerHttp2Stream, path: string) => void) {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => respond(stream, String(headers[':path'])));
  const drain = new HttpDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, drain, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function connect(url: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url);
  session.on('error', () => {});
  return new Promise((resolve) => session.once('connect', () => resolve(session)));
}

/** One request: its status and body, or the error it ended with. */
function request(session: http2.ClientHttp2Session, path = '/'): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', (err) => resolve({ error: err.message }));
  });
}

const later = (stream: http2.ServerHttp2Stream, ms: number, body: string) =>
  setTimeout(() => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200 });
    stream.end(body);
  }, ms);

describe('a draining worker moves its HTTP/2 sessions', () => {
  test('streams in flight finish, the client is told GOAWAY, status counts the streams; the drain settles once the session closes', async () => {
    let arrived = 0;
    const three = deferred<void>();
    const s = await served((stream) => {
      if (++arrived === 3) three.resolve();
      later(stream, 30, 'ok');
    });
    const session = await connect(s.url);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const answers = Promise.all([request(session), request(session), request(session)]);
    await within(three.promise, 'three streams in flight');
    assert.equal(s.drain.inFlight, 3);
    const drained = s.drain.drain(drainOptions);
    assert.equal(await within(goaway, 'a GOAWAY'), http2.constants.NGHTTP2_NO_ERROR);
    assert.deepEqual(await answers, [
      { status: 200, body: 'ok' },
      { status: 200, body: 'ok' },
      { status: 200, body: 'ok' },
    ]);
    await within(drained, 'the drain to settle');
    assert.equal(s.drain.served, 3);
    assert.equal(s.drain.inFlight, 0);
    session.destroy();
  });

  test('a session idle when the drain begins is told with its next stream, which finishes; the drain does not wait for the PING bound', async () => {
    const s = await served((stream) => later(stream, 10, 'ok'));
    const session = await connect(s.url);
    assert.deepEqual(await request(session), { status: 200, body: 'ok' });
    const drained = s.drain.drain(drainOptions);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    assert.deepEqual(await within(request(session), 'the next stream'), { status: 200, body: 'ok' });
    await within(goaway, 'a GOAWAY');
    // Its last stream closed before the PING was answered: nghttp2 would not read the answer, the session closes anyway.
    await within(drained, 'the drain to settle');
    session.destroy();
  });

  test('a session whose last stream ends just after the GOAWAY closes then, without waiting for the PING answer nghttp2 no longer reads', async () => {
    const held = deferred<http2.ServerHttp2Stream>();
    const s = await served((stream) => held.resolve(stream));
    const session = await connect(s.url);
    const answer = request(session);
    const stream = await within(held.promise, 'the stream');
    const drained = s.drain.drain(drainOptions);
    stream.respond({ ':status': 200 });
    stream.end('ok');
    assert.deepEqual(await within(answer, 'the answer'), { status: 200, body: 'ok' });
    await within(drained, 'the drain to settle');
    session.destroy();
  });

  test('a session that stays idle is closed after the idle time', async () => {
    const s = await served((stream) => later(stream, 0, 'ok'));
    const session = await connect(s.url);
    assert.deepEqual(await request(session), { status: 200, body: 'ok' });
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    await within(s.drain.drain({ idleCloseMs: 50, lingerMs: 100, callGraceMs: 60_000 }), 'the drain to settle');
    await within(closed, 'the client to see its session closed');
  });

  test('a session that comes in after the drain began is told GOAWAY, and the stream it sent first still finishes', async () => {
    const s = await served((stream) => later(stream, 10, 'late but answered'));
    await within(s.drain.drain(drainOptions), 'the first drain to settle');
    // As node:cluster hands a worker a connection the master accepted before the worker stopped accepting.
    const handOver = net.createServer((socket) => s.server.emit('connection', socket));
    await new Promise<void>((resolve) => handOver.listen(0, '127.0.0.1', resolve));
    try {
      const session = http2.connect(`http://127.0.0.1:${(handOver.address() as AddressInfo).port}`);
      session.on('error', () => {});
      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      assert.deepEqual(await within(request(session), 'the late stream'), { status: 200, body: 'late but answered' });
      await within(goaway, 'a GOAWAY');
      await within(new Promise((resolve) => session.once('close', resolve)), 'the session to close');
      assert.equal(s.drain.inFlight, 0);
    } finally {
      handOver.close();
    }
  });

  test('a server-sent events stream over HTTP/2 ends after an event', async () => {
    const arrived = deferred<void>();
    const s = await served((stream) => {
      arrived.resolve();
      stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => stream.write(`id: ${++n}\ndata: ${n}\n\n`), 10);
      stream.on('close', () => clearInterval(timer));
    });
    const session = await connect(s.url);
    const answer = request(session, '/events');
    await within(arrived.promise, 'the stream in flight');
    const drained = s.drain.drain(drainOptions);
    const result = await within(answer, 'the event stream to end');
    assert.ok('body' in result && result.body.endsWith('\n\n'), JSON.stringify(result));
    await within(drained, 'the drain to settle');
    session.destroy();
  });
});
