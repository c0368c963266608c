import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { EventSource } from 'eventsource';
import { deferred } from '../../src/core/deferred.js';
import { fixture, startGraft, waitFor, type GraftProcess, type LogRecord } from '../helpers/graft.js';
import { within } from '../helpers/within.js';

const RELOADS = 3;
/** Far above how long any drain below takes: a worker still there at this bound waits for it, and is found out below. */
const GRACEFUL_TIMEOUT_S = 60;
/** How long a retired generation may take to exit: a fraction of the drain timeout, so one that only the timeout ends fails. */
const EXIT_BOUND_MS = 20_000;

/** How long each retired generation took to drain, as the master logged it. */
function drainTimes(g: GraftProcess): string {
  return g.logs
    .filter((r) => r.msg === 'generation retired')
    .map((r) => `${r.drainMs} ms`)
    .join(', ');
}

/** Wait for every worker of a retired generation to exit (the master's 'worker exited' lines), well before the drain timeout. */
async function generationExited(g: GraftProcess, generation: number, workers: number): Promise<LogRecord[]> {
  const exited = () => g.logs.filter((r) => r.msg === 'worker exited' && r.generation === generation);
  await g.waitForLog(() => exited().length >= workers, EXIT_BOUND_MS);
  return exited();
}

/** Something seen, and waiters for the first time a generation (or a later one) shows up in it. */
class GenerationWatch {
  last = 0;
  private waiters: Array<{ generation: number; done: () => void }> = [];

  seen(generation: number): void {
    this.last = Math.max(this.last, generation);
    this.waiters = this.waiters.filter((w) => {
      if (generation < w.generation) return true;
      w.done();
      return false;
    });
  }

  reached(generation: number, what: string): Promise<void> {
    if (this.last >= generation) return Promise.resolve();
    return within(new Promise<void>((done) => this.waiters.push({ generation, done })), `${what} from generation ${generation}`, 20_000);
  }
}

type Attempt = { ok: true; generation: number } | { ok: false; refused: boolean; error: string };

/**
 * An HTTP/2 client as a real one behaves: one session, several streams at
 * once, back to back. After a GOAWAY it opens a new session for its next
 * streams; a stream the server refused (NGHTTP2_REFUSED_STREAM: it never
 * reached the app) or one the closing session no longer took is sent again
 * on a new session. A failure is what it finally sees.
 */
class H2Client {
  ok = 0;
  retried = 0;
  sessions = 0;
  readonly failures: string[] = [];
  readonly generations = new GenerationWatch();
  private session: http2.ClientHttp2Session;
  private running = true;
  private readonly loops: Array<Promise<void>>;

  constructor(
    private readonly url: string,
    concurrency: number,
  ) {
    this.session = this.connect();
    this.loops = Array.from({ length: concurrency }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await within(Promise.all(this.loops), 'the HTTP/2 client loops to end', 10_000);
    this.session.close();
  }

  private connect(): http2.ClientHttp2Session {
    this.sessions++;
    const session = http2.connect(this.url);
    session.on('error', () => {}); // its streams report it
    return session;
  }

  private current(): http2.ClientHttp2Session {
    if (this.session.closed || this.session.destroyed) this.session = this.connect();
    return this.session;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      for (let attempt = 1; ; attempt++) {
        const result = await this.attempt();
        if (result.ok) {
          this.ok++;
          this.generations.seen(result.generation);
        } else if (result.refused && attempt < 3) {
          this.retried++;
          continue;
        } else this.failures.push(result.error);
        break;
      }
    }
  }

  private attempt(): Promise<Attempt> {
    return new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.current().request({ ':path': '/' });
      } catch (err) {
        // The session took the server's GOAWAY between our check and this request: nothing was sent.
        return resolve({ ok: false, refused: true, error: String((err as NodeJS.ErrnoException).code) });
      }
      let status = 0;
      let body = '';
      stream.setEncoding('utf8');
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => (status === 200 ? resolve({ ok: true, generation: Number(body) }) : resolve({ ok: false, refused: false, error: `status ${status}` })));
      stream.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, refused: /REFUSED_STREAM/.test(err.message), error: `${err.code}: ${err.message}` }));
      stream.on('close', () => resolve({ ok: false, refused: stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM, error: `closed with code ${stream.rstCode} before its end` }));
      stream.setTimeout(5000, () => {
        resolve({ ok: false, refused: false, error: 'no answer for 5 s' });
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
    });
  }
}

/** The live generation's workers have answered requests, as `graft status` tells. */
async function servedByLive(g: GraftProcess, generation: number): Promise<number> {
  const status = await waitFor(
    async () => {
      const s = await g.status();
      const live = s.workers.filter((w) => w.generation === generation);
      return live.reduce((sum, w) => sum + w.served, 0) > 0 ? live : undefined;
    },
    10_000,
    `graft status to show generation ${generation} served requests`,
  );
  return status.reduce((sum, w) => sum + w.served, 0);
}

describe('HTTP/2 through reloads (node:http2, no graft import)', () => {
  for (const api of ['stream', 'compat'] as const) {
    test(`${api} API: one session with 4 streams at a time, back to back, through ${RELOADS} reloads: no request fails, each old generation exits long before the drain timeout, status counts what HTTP/2 workers served`, async (t) => {
      const g = await startGraft(fixture('h2-app.mjs'), { workers: 2, env: { H2_API: api }, args: ['--graceful-timeout', String(GRACEFUL_TIMEOUT_S)] });
      let client: H2Client | undefined;
      try {
        let generation = Number((await g.waitRunning()).generation);
        client = new H2Client(g.url, 4);
        await client.generations.reached(generation, 'an answer');
        for (let i = 0; i < RELOADS; i++) {
          const r = await g.cli('reload');
          assert.equal(r.code, 0, r.stderr);
          const old = generation++;
          await client.generations.reached(generation, 'an answer');
          const exited = await generationExited(g, old, 2);
          assert.ok(
            exited.reduce((sum, r) => sum + Number(r.served), 0) > 0,
            `generation ${old}'s workers counted the streams they served: ${JSON.stringify(exited.map((r) => r.served))}`,
          );
        }
        assert.ok((await servedByLive(g, generation)) > 0);
        await client.stop();
        t.diagnostic(`${client.ok} answered, ${client.retried} refused and sent again, ${client.failures.length} failed, ${client.sessions} sessions; generations drained in ${drainTimes(g)}`);
        assert.deepEqual(client.failures, [], `failed requests (${client.ok} answered, ${client.retried} refused and sent again)`);
        assert.ok(client.ok > 100, `only ${client.ok} requests answered`);
        assert.ok(client.sessions > RELOADS, `the client moved to a new session after each GOAWAY (${client.sessions} sessions)`);
        assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'no old worker waited for the drain timeout');
      } finally {
        await client?.stop().catch(() => {});
        await g.stop();
      }
    });
  }
});

interface SayReply {
  text: string;
  generation: number;
}
interface CountReply {
  i: number;
  generation: number;
}
interface EchoClient extends grpc.Client {
  say(request: { text: string; delayMs: number }, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: SayReply) => void): grpc.ClientUnaryCall;
  count(request: { n: number; intervalMs: number }): grpc.ClientReadableStream<CountReply>;
}

function echoClient(port: number): EchoClient {
  const definition = protoLoader.loadSync(fixture('echo.proto'));
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { graft: { test: { Echo: grpc.ServiceClientConstructor } } };
  return new loaded.graft.test.Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
}

/** A server-streaming call, followed to its end: what it received, and the status it ended with. */
function followCount(client: EchoClient, n: number, intervalMs: number) {
  const replies: CountReply[] = [];
  const first = deferred<void>();
  const call = client.count({ n, intervalMs });
  call.on('data', (reply: CountReply) => {
    replies.push(reply);
    first.resolve();
  });
  const ended = new Promise<{ status?: grpc.StatusObject; error?: string }>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => resolve({ error: `${err.code} ${err.details}` }));
    call.on('status', (status: grpc.StatusObject) => resolve({ status }));
  });
  return { replies, first: first.promise, ended };
}

describe('gRPC through reloads (@grpc/grpc-js, no graft import)', () => {
  test(`unary calls back to back and a server stream open at each of ${RELOADS} reloads: no call fails, the open stream completes with OK on its generation, each old generation exits long before the drain timeout`, async (t) => {
    const gateDir = mkdtempSync(join(tmpdir(), 'graft-grpc-gate-'));
    const gate = join(gateDir, 'open');
    const g = await startGraft(fixture('grpc-app.mjs'), { workers: 2, env: { GRPC_STREAM_GATE: gate }, args: ['--graceful-timeout', String(GRACEFUL_TIMEOUT_S)] });
    const client = echoClient(g.port);
    const generations = new GenerationWatch();
    const failures: string[] = [];
    let ok = 0;
    let running = true;
    const unary = () =>
      new Promise<void>((resolve) => {
        client.say({ text: 'hi', delayMs: 20 }, { deadline: Date.now() + 5000 }, (err, reply) => {
          if (err) failures.push(`${err.code} ${err.details}`);
          else if (reply?.text !== 'hi') failures.push(`wrong reply ${JSON.stringify(reply)}`);
          else {
            ok++;
            generations.seen(reply.generation);
          }
          resolve();
        });
      });
    let loops: Array<Promise<void>> = [];
    try {
      let generation = Number((await g.waitRunning()).generation);
      loops = Array.from({ length: 4 }, async () => {
        while (running) await unary();
      });
      await generations.reached(generation, 'a unary reply');
      for (let i = 0; i < RELOADS; i++) {
        // 30 replies 100 ms apart, the last held back until the gate opens: still streaming when the drain begins.
        rmSync(gate, { force: true });
        const stream = followCount(client, 30, 100);
        await within(stream.first, 'the stream to start', 10_000);
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
        assert.ok(stream.replies.length < 30, 'the stream was still open when the old generation began to drain');
        writeFileSync(gate, '');
        const old = generation++;
        await generations.reached(generation, 'a unary reply');
        const end = await within(stream.ended, 'the open stream to end', EXIT_BOUND_MS);
        assert.equal(end.error, undefined, `the stream ended with an error: ${end.error}`);
        assert.equal(end.status?.code, grpc.status.OK);
        assert.deepEqual(
          stream.replies.map((m) => [m.i, m.generation]),
          Array.from({ length: 30 }, (_, k) => [k + 1, old]),
          'every reply of the stream came, in order, from the generation it started on',
        );
        await generationExited(g, old, 2);
      }
      assert.ok((await servedByLive(g, generation)) > 0);
      running = false;
      await within(Promise.all(loops), 'the unary loops to end', 10_000);
      t.diagnostic(`${ok} unary calls answered, ${failures.length} failed; generations drained in ${drainTimes(g)}`);
      assert.deepEqual(failures, [], `failed unary calls (${ok} answered)`);
      assert.ok(ok > 100, `only ${ok} unary calls answered`);
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'no old worker waited for the drain timeout');
    } finally {
      running = false;
      client.close();
      await g.stop();
      rmSync(gateDir, { recursive: true, force: true });
    }
  });
});

describe('a gRPC stream that never ends by itself, through a reload (@grpc/grpc-js, no graft import)', () => {
  test('at half the drain timeout it gets its last whole message, then UNAVAILABLE; called again, it streams from the new generation; the old generation exits without being killed', async () => {
    const gracefulTimeoutS = 8;
    const g = await startGraft(fixture('grpc-app.mjs'), { workers: 1, args: ['--graceful-timeout', String(gracefulTimeoutS)] });
    const client = echoClient(g.port);
    try {
      const generation = Number((await g.waitRunning()).generation);
      const stream = followCount(client, 1_000_000, 50);
      await within(stream.first, 'the stream to start', 10_000);
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      const end = await within(stream.ended, 'the stream to be told to end', gracefulTimeoutS * 1000);
      assert.equal(end.error, `${grpc.status.UNAVAILABLE} graft: this worker is draining; call again and the new generation answers`);
      assert.deepEqual(
        stream.replies.map((m) => [m.i, m.generation]),
        stream.replies.map((_, k) => [k + 1, generation]),
        'every reply came whole and in order from the generation the call started on',
      );
      // What a client does with UNAVAILABLE: call again, on the new generation.
      const again = followCount(client, 3, 10);
      assert.equal((await within(again.ended, 'the second call to end', 10_000)).status?.code, grpc.status.OK);
      assert.deepEqual(
        again.replies.map((m) => m.generation),
        [generation + 1, generation + 1, generation + 1],
      );
      const [exited] = await generationExited(g, generation, 1);
      assert.equal(exited!.signal, null, 'the old worker exited by itself, not killed at the drain timeout');
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false);
    } finally {
      client.close();
      await g.stop();
    }
  });
});

describe('server-sent events through reloads (node:http, no graft import)', () => {
  test(`an EventSource open across ${RELOADS} reloads reconnects to each new generation, and with Last-Event-ID gets every event once, none missing; each old generation exits long before the drain timeout`, async (t) => {
    const g = await startGraft(fixture('sse-app.mjs'), { workers: 2, args: ['--graceful-timeout', String(GRACEFUL_TIMEOUT_S)] });
    let source: EventSource | undefined;
    try {
      let generation = Number((await g.waitRunning()).generation);
      const events: Array<{ id: number; generation: number; data: number }> = [];
      const generations = new GenerationWatch();
      let opens = 0;
      source = new EventSource(`${g.url}/events`);
      source.onopen = () => opens++;
      source.onmessage = (event) => {
        const [from, id] = String(event.data).split(' ').map(Number);
        events.push({ id: Number(event.lastEventId), generation: from!, data: id! });
        generations.seen(from!);
      };
      await generations.reached(generation, 'an event');
      for (let i = 0; i < RELOADS; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
        const old = generation++;
        await generations.reached(generation, 'an event');
        await generationExited(g, old, 2);
      }
      source.close();
      t.diagnostic(`${events.length} events over ${opens} connections; generations drained in ${drainTimes(g)}`);
      assert.ok(opens >= RELOADS + 1, `the stream was opened ${opens} times`);
      assert.deepEqual(
        events.filter((e) => e.id !== e.data),
        [],
        'each event carries its own id',
      );
      const ids = events.map((e) => e.id);
      const breaks = ids.flatMap((id, k) => (k > 0 && id !== ids[k - 1]! + 1 ? [`${ids[k - 1]} then ${id}`] : []));
      assert.deepEqual(breaks, [], `the ${ids.length} event ids run without a gap or a repeat`);
      const order = events.map((e) => e.generation);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), 'the events come from the generations in order');
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'no old worker waited for the drain timeout');
    } finally {
      source?.close();
      await g.stop();
    }
  });
});
