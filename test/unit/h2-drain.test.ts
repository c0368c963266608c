import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import { GRPC_UNAVAILABLE } from '../../src/worker/grpc-call-drain.js';
import { Http2Leases } from '../../src/worker/h2-drain.js';
import { HttpDrain } from '../../src/worker/http-drain.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
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

/** The highest stream id: the first GOAWAY's "every stream you sent is taken". */
const ANY_STREAM = 2 ** 31 - 1;

/** Timers that hold the process (an unref'd timer is not counted). */
const heldTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/**
 * An h2c server watched by Http2Leases alone, closed with its sessions
 * once the test is over (also when it failed). `respond` answers each
 * stream; `changes` counts the leases' calls of `changed`.
 */
async function leased(t: TestContext, respond: (stream: http2.ServerHttp2Stream, path: string) => void) {
  const server = http2.createServer();
  const clients: http2.ClientHttp2Session[] = [];
  t.after(() => {
    for (const client of clients) client.destroy();
    for (const session of sessions) session.destroy();
    server.close();
  });
  let changes = 0;
  const leases = new Http2Leases(server, () => changes++);
  const sessions: http2.ServerHttp2Session[] = [];
  const arrived: Array<(session: http2.ServerHttp2Session) => void> = [];
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.push(session);
    arrived.shift()?.(session);
  });
  server.on('stream', (stream, headers) => respond(stream, String(headers[':path'])));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    leases,
    sessions,
    changes: () => changes,
    /** A client session, once the server has its session too; what it was told (GOAWAYs' last stream ids, PINGs), and when it closed. */
    async connect() {
      const serverSession = new Promise<http2.ServerHttp2Session>((resolve) => arrived.push(resolve));
      let told = 0;
      const client = await connect(url);
      clients.push(client);
      const goaways: number[] = [];
      const waiting: Array<(lastStreamID: number) => void> = [];
      let pings = 0;
      client.on('goaway', (_code: number, lastStreamID: number) => {
        goaways.push(lastStreamID);
        waiting.shift()?.(lastStreamID);
      });
      client.on('ping', () => pings++);
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const server = await within(serverSession, 'the server session');
      const serverClosed = next(server, 'close');
      return {
        client,
        server,
        serverClosed,
        goaways,
        /** The next GOAWAY's last stream id (one already received first). */
        goaway: (): Promise<number> => (goaways.length > told ? Promise.resolve(goaways[told++]!) : new Promise((resolve) => waiting.push((id) => (told++, resolve(id))))),
        pings: () => pings,
        closed,
      };
    },
  };
}

/** A server of `leased` whose app holds each stream, a client session, and a request on it: its answer to come, and the stream the app holds. */
async function streamHeld(t: TestContext) {
  const held = deferred<http2.ServerHttp2Stream>();
  const s = await leased(t, (stream) => held.resolve(stream));
  const c = await s.connect();
  const answer = request(c.client);
  const stream = await within(held.promise, 'the stream');
  return { s, c, answer, stream };
}

/** The next time `emitter` emits `event`. */
const next = (emitter: NodeJS.EventEmitter, event: string) => new Promise<void>((resolve) => emitter.once(event, () => resolve()));

/** A gRPC-style response: headers saying application/grpc, trailers to come. */
const respondGrpc = (stream: http2.ServerHttp2Stream) => stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });

/** One length-prefixed gRPC message of n bytes. */
const message = (n: number) => Buffer.concat([Buffer.from([0, 0, 0, 0, n]), Buffer.alloc(n, 7)]);

describe('Http2Leases', () => {
  test('counts sessions and streams, and tells of each that closes', async (t) => {
    const held = deferred<http2.ServerHttp2Stream>();
    const s = await leased(t, (stream) => held.resolve(stream));
    const c = await s.connect();
    assert.equal(s.leases.openSessions, 1);
    const answer = request(c.client);
    const stream = await within(held.promise, 'the stream');
    assert.equal(s.leases.inFlight, 1);
    assert.equal(s.changes(), 0);
    const closed = next(stream, 'close');
    stream.respond({ ':status': 200 });
    stream.end('ok');
    await within(closed, 'the stream to close');
    assert.equal(s.changes(), 1, 'told when the stream closed');
    assert.equal(s.leases.inFlight, 0);
    assert.equal(s.leases.served, 1);
    assert.equal(s.leases.openSessions, 1);
    assert.deepEqual(await answer, { status: 200, body: 'ok' });
    c.client.close();
    await within(c.serverClosed, 'the session to close');
    assert.equal(s.changes(), 2, 'told when the session closed');
    assert.equal(s.leases.openSessions, 0);
  });

  test('a session that began before the leases were watched: its streams are counted, served', async (t) => {
    const held = deferred<http2.ServerHttp2Stream>();
    const server = http2.createServer();
    server.on('stream', (stream) => held.resolve(stream));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const serverSession = new Promise<http2.ServerHttp2Session>((resolve) => server.once('session', resolve));
    const client = await connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const session = await within(serverSession, 'the server session');
    t.after(() => {
      client.destroy();
      session.destroy();
      server.close();
    });
    const leases = new Http2Leases(server, () => {});
    const answer = request(client);
    const stream = await within(held.promise, 'the stream');
    assert.equal(leases.inFlight, 1);
    assert.equal(leases.openSessions, 0);
    const closed = next(stream, 'close');
    stream.respond({ ':status': 200 });
    stream.end('ok');
    assert.deepEqual(await within(answer, 'the answer'), { status: 200, body: 'ok' });
    await within(closed, 'the stream to close');
    assert.equal(leases.served, 1);
  });

  test('a session with a stream open: GOAWAY naming every stream, a PING, then the final GOAWAY; the stream finishes; no timer holds the process', async (t) => {
    const { s, c, answer, stream } = await streamHeld(t);
    const timers = heldTimers();
    s.leases.drain(new QuietWatch(60_000), 60_000, 60_000);
    assert.equal(heldTimers(), timers, 'the drain holds no timer of its own');
    assert.equal(c.server.closed, false, 'the final GOAWAY waits for the PING answer');
    assert.equal(await within(c.goaway(), 'the first GOAWAY'), ANY_STREAM);
    assert.equal(await within(c.goaway(), 'the final GOAWAY'), 1);
    assert.equal(c.pings(), 1, 'the PING came before the final GOAWAY');
    const closed = next(stream, 'close');
    stream.respond({ ':status': 200 });
    stream.end('ok');
    assert.deepEqual(await within(answer, 'the answer'), { status: 200, body: 'ok' });
    await within(closed, 'the stream to close');
    await within(c.closed, 'the session to close');
  });

  test('a session idle for the idle time gets its final GOAWAY at once, no PING; its timer does not hold the process', async (t) => {
    const s = await leased(t, (stream) => later(stream, 0, 'ok'));
    const c = await s.connect();
    const timers = heldTimers();
    s.leases.drain(new QuietWatch(60_000), 20, 60_000);
    assert.equal(heldTimers(), timers, 'the drain holds no timer of its own');
    await within(c.closed, 'the session to close');
    assert.equal(c.pings(), 0);
    assert.equal(c.goaways[0], ANY_STREAM);
    assert.equal(c.goaways.at(-1), 0, 'the final GOAWAY: no stream was taken');
    await within(c.serverClosed, 'the server session to close');
    assert.equal(s.leases.openSessions, 0);
  });

  test('a session the app closed already is not told GOAWAY again', async (t) => {
    const { s, c, answer, stream } = await streamHeld(t);
    c.server.close();
    s.leases.drain(new QuietWatch(60_000), 60_000, 60_000);
    stream.respond({ ':status': 200 });
    stream.end('ok');
    assert.deepEqual(await within(answer, 'the answer'), { status: 200, body: 'ok' });
    await within(c.closed, 'the session to close');
    assert.ok(c.goaways.length > 0 && c.goaways.every((id) => id === 1), `only the app's GOAWAY, not a later one naming more streams: ${c.goaways.join(', ')}`);
  });

  test('a stream that opens during the drain: an event stream ends after an event; a gRPC call is left alone within the call grace', async (t) => {
    const ended = reports();
    const s = await leased(t, (stream, path) => {
      const seen = ended(path);
      if (path === '/events') {
        stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
        stream.write('data: 1\n\n');
        setImmediate(() => seen.resolve(stream.writableEnded));
      } else grpcApp(stream, seen);
    });
    const events = await s.connect();
    const call = await s.connect();
    s.leases.drain(new QuietWatch(60_000), 60_000, 60_000);
    const answers = [request(events.client, '/events'), grpcRequest(call.client, '/call')];
    assert.equal(await within(ended('/events').promise, 'the event stream'), true, 'graft ended the event stream after its event');
    assert.equal(await within(ended('/call').promise, 'the call'), false, 'the call was not told to end');
    assert.deepEqual(await within(Promise.all(answers), 'the answers'), [
      { status: 200, body: 'data: 1\n\n' },
      { status: '0', bytes: 6 },
    ]);
    await within(Promise.all([events.closed, call.closed]), 'the sessions to close');
  });

  test('a gRPC call that opens once the call grace is over is told to end after its message', async (t) => {
    const ended = reports();
    const s = await leased(t, (stream, path) => {
      const seen = ended(path);
      if (path === '/watch') {
        // A call that writes once, then nothing: told at the grace, it ends once quiet.
        respondGrpc(stream);
        stream.write(message(1), () => seen.resolve(true));
      } else grpcApp(stream, seen);
    });
    const watch = await s.connect();
    const late = await s.connect();
    const watching = grpcRequest(watch.client, '/watch');
    await within(ended('/watch').promise, 'the first call to write');
    s.leases.drain(new QuietWatch(10), 60_000, 0);
    assert.deepEqual(await within(watching, 'the first call to be told'), { status: String(GRPC_UNAVAILABLE), bytes: 6 });
    const answer = grpcRequest(late.client, '/call');
    assert.equal(await within(ended('/call').promise, 'the late call'), true, 'graft ended the late call after its message');
    assert.deepEqual(await within(answer, 'the answer'), { status: String(GRPC_UNAVAILABLE), bytes: 6 });
    await within(Promise.all([watch.closed, late.closed]), 'the sessions to close');
  });
});

/** One deferred report per path, whichever side asks first. */
function reports() {
  const each = new Map<string, ReturnType<typeof deferred<boolean>>>();
  return (path: string) => {
    let report = each.get(path);
    if (!report) each.set(path, (report = deferred<boolean>()));
    return report;
  };
}

/**
 * A gRPC call on node:http2: one message, then (unless graft ended the call
 * from that message's callback) status OK. `ended` says whether graft had.
 */
function grpcApp(stream: http2.ServerHttp2Stream, ended: { resolve(told: boolean): void }) {
  respondGrpc(stream);
  stream.write(message(1), () =>
    setImmediate(() => {
      ended.resolve(stream.writableEnded);
      if (stream.writableEnded) return;
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end();
    }),
  );
}

/** A gRPC call from a client: the status its trailers gave, and how many bytes came before. */
function grpcRequest(session: http2.ClientHttp2Session, path: string): Promise<{ status: string | undefined; bytes: number } | { error: string }> {
  return new Promise((resolve) => {
    const stream = session.request({ ':path': path, ':method': 'POST', 'content-type': 'application/grpc' });
    let status: string | undefined;
    let bytes = 0;
    stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'])));
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.on('end', () => resolve({ status, bytes }));
    stream.on('error', (err) => resolve({ error: err.message }));
    stream.end();
  });
}
