import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { deferred } from '../../src/core/deferred.js';
import { DRAINING_MESSAGE } from '../../src/worker/grpc-call-drain.js';
import { HttpDrain, type DrainOptions } from '../../src/worker/http-drain.js';
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
