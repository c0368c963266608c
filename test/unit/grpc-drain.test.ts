import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { deferred } from '../../src/core/deferred.js';
import { DRAINING_MESSAGE, endGrpcCall, GRPC_UNAVAILABLE } from '../../src/worker/grpc-call-drain.js';
import { HttpDrain, type DrainOptions } from '../../src/worker/http-drain.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
import { within } from '../helpers/within.js';

const proto = new URL('../fixtures/echo.proto', import.meta.url).pathname;
const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(proto)) as unknown as { graft: { test: { Echo: grpc.ServiceClientConstructor } } };
const Echo = loaded.graft.test.Echo;

interface CountReply {
  i: number;
}


/**
 * A grpc-js server as an app writes it, with graft's drain on the http2
 * server grpc-js listens with (found the way a worker finds it, at listen()).
 * cancelled resolves when a Count handler is told its call was cancelled.
 */
async function served() {
  const cancelled = deferred<void>();
  const asked = deferred<void>();
  const server = new grpc.Server();
  server.addService(Echo.service, {
    say(call: grpc.ServerUnaryCall<{ text: string; delayMs: number }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      // Its headers go out at once, long before its answer (as an app that sends metadata first).
      call.sendMetadata(new grpc.Metadata());
      asked.resolve();
      setTimeout(() => callback(null, { text: call.request.text }), call.request.delayMs);
    },
    count(call: grpc.ServerWritableStream<{ n: number; intervalMs: number }, unknown>) {
      let i = 0;
      // Up to 10 messages at each tick, written in one turn of the event loop.
      const timer = setInterval(() => {
        for (let k = 0; k < 10 && i < call.request.n; k++) call.write({ i: ++i });
        if (i >= call.request.n) {
          clearInterval(timer);
          call.end();
        }
      }, call.request.intervalMs);
      call.on('cancelled', () => {
        clearInterval(timer);
        cancelled.resolve();
      });
    },
  });
  let drain: HttpDrain | undefined;
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    drain ??= new HttpDrain(this);
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof listen;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  } finally {
    net.Server.prototype.listen = listen;
  }
  assert.ok(drain, 'grpc-js listened through a net.Server');
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    say(request: object, callback: (err: grpc.ServiceError | null, reply?: { text: string }) => void): void;
    count(request: object): grpc.ClientReadableStream<CountReply>;
  };
  return {
    drain: (options: Partial<DrainOptions>) => drain!.drain({ idleCloseMs: 60_000, lingerMs: 100, callGraceMs: 60_000, ...options }),
    client,
    cancelled: cancelled.promise,
    /** A Say call reached its handler. */
    asked: asked.promise,
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}

/** A server-streaming call followed to its end: what it received, and how it ended. */
function follow(stream: grpc.ClientReadableStream<CountReply>) {
  const replies: number[] = [];
  const first = deferred<void>();
  stream.on('data', (reply: CountReply) => {
    replies.push(reply.i);
    first.resolve();
  });
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    stream.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }));
    stream.on('status', (status: grpc.StatusObject) => status.code === grpc.status.OK && resolve({ code: status.code, details: status.details }));
  });
  return { replies, first: first.promise, ended };
}

describe('a draining worker tells its gRPC calls to end (@grpc/grpc-js)', { timeout: 30_000 }, () => {
  test('a server stream still open at the call grace gets every message it wrote, whole, then UNAVAILABLE; its handler is told the call was cancelled; the drain settles', async () => {
    const s = await served();
    try {
      const call = follow(s.client.count({ n: 1_000_000, intervalMs: 5 }));
      await within(call.first, 'the first message');
      const drained = s.drain({ callGraceMs: 100 });
      const end = await within(call.ended, 'the stream to end');
      assert.equal(end.code, grpc.status.UNAVAILABLE, end.details);
      assert.equal(end.details, DRAINING_MESSAGE);
      assert.ok(call.replies.length > 1);
      assert.deepEqual(
        call.replies,
        call.replies.map((_, k) => k + 1),
        'every message arrived, in order, none cut',
      );
      assert.equal(call.replies.length % 10, 0, `${call.replies.length} messages: the end came between two ticks, not inside one's writes`);
      await within(s.cancelled, "the handler's 'cancelled' event");
      await within(drained, 'the drain to settle');
    } finally {
      s.close();
    }
  });

  test('calls that finish within the grace, and a unary call that sent its headers first and answers after it, end OK', async () => {
    const s = await served();
    try {
      const short = follow(s.client.count({ n: 5, intervalMs: 10 }));
      await within(short.first, 'the first message');
      // An answer of 3 MB: the socket takes it in several turns of the event loop before grpc-js sends the status.
      const text = 'x'.repeat(3_000_000);
      const unary = new Promise<{ err: grpc.ServiceError | null; text?: string }>((resolve) => s.client.say({ text, delayMs: 300 }, (err, reply) => resolve({ err, text: reply?.text })));
      await within(s.asked, 'the unary call to reach its handler');
      // The grace ends while the unary call is still being worked on: its one answer is not cut from its status.
      const drained = s.drain({ callGraceMs: 150 });
      assert.deepEqual(await within(short.ended, 'the short stream to end'), { code: grpc.status.OK, details: 'OK' });
      assert.deepEqual(short.replies, [1, 2, 3, 4, 5]);
      const answer = await within(unary, 'the unary answer');
      assert.equal(answer.err, null, answer.err?.message);
      assert.equal(answer.text, text);
      await within(drained, 'the drain to settle');
    } finally {
      s.close();
    }
  });
});

/**
 * A node:http2 server whose handler gets each stream (or, with `compat`,
 * each request and response of the compatibility API), and one client
 * session to it; both closed once the test is over, also when it failed.
 */
async function h2(t: TestContext, handler: (stream: http2.ServerHttp2Stream, path: string) => void, compat?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void) {
  const server = compat ? http2.createServer(compat) : http2.createServer();
  if (!compat) server.on('stream', (stream, headers) => handler(stream, String(headers[':path'])));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => sessions.add(session));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  t.after(() => {
    client.destroy();
    for (const session of sessions) session.destroy();
    server.close();
  });
  return client;
}

/** A gRPC call from the client: the bytes that came, and the status its trailers gave; `paused` reads nothing until resume(). */
function call(client: http2.ClientHttp2Session, path: string, paused = false) {
  const stream = client.request({ ':path': path, ':method': 'POST', 'content-type': 'application/grpc' });
  if (paused) stream.pause();
  stream.end();
  let bytes = 0;
  let status: string | undefined;
  let message: string | undefined;
  stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
  stream.on('trailers', (trailers) => {
    status = String(trailers['grpc-status']);
    message = trailers['grpc-message'] === undefined ? undefined : String(trailers['grpc-message']);
  });
  const ended = new Promise<{ bytes: number; status?: string; message?: string } | { error: string }>((resolve) => {
    stream.on('end', () => resolve({ bytes, status, message }));
    stream.on('error', (err) => resolve({ error: err.message }));
  });
  return { ended, resume: () => stream.resume() };
}

/** One length-prefixed gRPC message of n bytes (5 more with its prefix). */
function message(n: number): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(n, 1);
  return Buffer.concat([prefix, Buffer.alloc(n, 7)]);
}

const unavailable = (bytes: number) => ({ bytes, status: String(GRPC_UNAVAILABLE), message: DRAINING_MESSAGE });
const ok = (bytes: number) => ({ bytes, status: '0', message: undefined });

/** The app's own end of a call graft did not end: status OK. */
function finish(stream: http2.ServerHttp2Stream) {
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end();
}

/** A QuietWatch lease that writes nothing: told once the quiet time passed for every lease watched before it. */
function quietPassed(quiet: QuietWatch): Promise<void> {
  return new Promise((resolve) => quiet.watch({ written: () => 0, gone: () => false, quiet: resolve }));
}

describe('endGrpcCall on node:http2', () => {
  test("a call told to end ends with UNAVAILABLE after its message's write is done; a response that is not gRPC's is left alone", async (t) => {
    const types = ['application/grpc', 'application/grpc+proto', 'x-application/grpc', 'application/grpc-web', 'text/plain'];
    const told = new Map<string, ReturnType<typeof deferred<boolean>>>(types.map((type) => [type, deferred<boolean>()]));
    const client = await h2(t, (stream, path) => {
      const type = decodeURIComponent(path.slice(1));
      stream.respond({ ':status': 200, 'content-type': type }, { waitForTrailers: true });
      endGrpcCall(stream, new QuietWatch(60_000));
      stream.write(message(1), () =>
        setImmediate(() => {
          told.get(type)!.resolve(stream.writableEnded);
          if (!stream.writableEnded) finish(stream);
        }),
      );
    });
    const calls = types.map((type) => call(client, `/${encodeURIComponent(type)}`).ended);
    const results = await within(Promise.all(calls), 'the calls');
    const grpc = new Set(['application/grpc', 'application/grpc+proto']);
    assert.deepEqual(
      Object.fromEntries(types.map((type, k) => [type, results[k]])),
      Object.fromEntries(types.map((type) => [type, grpc.has(type) ? unavailable(6) : ok(6)])),
    );
    for (const [type, seen] of told) assert.equal(await seen.promise, grpc.has(type), `${type}: ended by graft from its write's callback`);
  });

  test("a call answered through node:http2's compatibility API (which sends its own trailers, with encoding-taking writes) ends with UNAVAILABLE", async (t) => {
    const told = deferred<boolean>();
    const client = await h2(t, () => {}, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' });
      endGrpcCall(res.stream, new QuietWatch(60_000));
      res.write(message(1), () =>
        setImmediate(() => {
          told.resolve(res.stream.writableEnded);
          if (!res.stream.writableEnded) {
            res.addTrailers({ 'grpc-status': '0' });
            res.end();
          }
        }),
      );
    });
    const answer = call(client, '/');
    assert.equal(await within(told.promise, 'the message written'), true, 'graft ended the call after its message');
    assert.deepEqual(await within(answer.ended, 'the call to end'), unavailable(6));
  });

  test('a call that has written nothing for the quiet time ends then', async (t) => {
    const client = await h2(t, (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      // Written before graft watched the call, and done: the call is between messages.
      stream.write(message(1), () => endGrpcCall(stream, new QuietWatch(10)));
    });
    assert.deepEqual(await within(call(client, '/').ended, 'the call to end'), unavailable(6));
  });

  test('a message still on its way (the client reads nothing) is no boundary, even once quiet; the call ends once it went out', async (t) => {
    const held = deferred<{ stream: http2.ServerHttp2Stream; quiet: QuietWatch }>();
    const size = 1_000_000;
    const client = await h2(t, (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      const quiet = new QuietWatch(10);
      endGrpcCall(stream, quiet);
      // No callback: graft sees the message is out only once the stream has nothing left to send.
      stream.write(message(size));
      held.resolve({ stream, quiet });
    });
    const answer = call(client, '/', true);
    const { stream, quiet } = await within(held.promise, 'the message written');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stream.writableEnded, false, 'not ended right after the write');
    await within(quietPassed(quiet), 'the quiet time');
    assert.ok(stream.writableLength > 0, 'the message is still on its way');
    assert.equal(stream.writableEnded, false, 'not ended once quiet');
    answer.resume();
    assert.deepEqual(await within(answer.ended, 'the call to end'), unavailable(size + 5));
  });
});
