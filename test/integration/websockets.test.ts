import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { deferred } from '../../src/core/deferred.js';
import { fixture, startGraft, tempDir } from '../helpers/graft.js';

const CLIENTS = 10;
const RELOADS = 5;

/**
 * A client as an app writes one: sends a numbered message every 50 ms, counts
 * the answers, and reconnects when the server closes. Each connection's
 * answers must be a gap-free prefix of what it sent: the server answered
 * every message it took.
 */
class Client {
  readonly closes: number[] = [];
  readonly connections: Array<{ tag: string; generation: number; sent: number; answered: number[] }> = [];
  private socket: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private waiting: { generation: number; done: () => void } | undefined;

  private opened = 0;

  constructor(
    private readonly url: string,
    private readonly name: string,
  ) {
    this.connect();
  }

  private connect(): void {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    const connection = { tag: `${this.name}.${++this.opened}`, generation: 0, sent: 0, answered: [] as number[] };
    socket.on('message', (data) => {
      const text = String(data);
      if (text.startsWith('hello ')) {
        connection.generation = Number(text.slice(6));
        this.connections.push(connection);
        if (this.waiting && connection.generation >= this.waiting.generation) this.waiting.done();
        this.timer = setInterval(() => {
          if (socket.readyState === WebSocket.OPEN) socket.send(`${connection.tag}:${++connection.sent}`);
        }, 50);
      } else connection.answered.push(Number(text.slice(text.indexOf(':') + 1)));
    });
    socket.on('close', (code) => {
      clearInterval(this.timer);
      if (this.stopped) return;
      this.closes.push(code);
      this.connect();
    });
    socket.on('error', () => {});
  }

  /** Resolves once this client is connected to the given generation (or a later one). */
  on(generation: number): Promise<void> {
    const last = this.connections.at(-1);
    if (last && last.generation >= generation && this.socket?.readyState === WebSocket.OPEN) return Promise.resolve();
    const d = deferred<void>();
    this.waiting = { generation, done: () => d.resolve() };
    return d.promise;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.socket?.close(1000);
  }
}

describe('WebSockets through reloads (ws, no graft import)', () => {
  test(`${CLIENTS} clients sending continuously through ${RELOADS} reloads: every close is 1001, every message the server took is answered, each client moves to the new generation, no worker waits for the drain timeout`, async () => {
    // What the server read, message by message: every one must be answered.
    const readLog = join(tempDir(), 'read.log');
    const g = await startGraft(fixture('ws-echo.mjs'), { workers: 2, env: { READ_LOG: readLog } });
    const clients: Client[] = [];
    try {
      const running = await g.waitRunning();
      const url = `ws://127.0.0.1:${g.port}/`;
      for (let i = 0; i < CLIENTS; i++) clients.push(new Client(url, String(i)));
      await Promise.all(clients.map((c) => c.on(Number(running.generation))));
      let generation = Number(running.generation);
      for (let i = 0; i < RELOADS; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
        generation++;
        // Every client reconnects by itself to the generation that took over.
        await Promise.all(clients.map((c) => c.on(generation)));
      }
      const status = await g.status();
      assert.equal(status.master.generation, generation);
      for (const [i, c] of clients.entries()) {
        assert.equal(c.closes.length, RELOADS, `client ${i} was closed once per reload`);
        assert.deepEqual(c.closes.filter((code) => code !== 1001), [], `client ${i}: every close is 1001 "going away", none abnormal`);
        for (const conn of c.connections) {
          assert.deepEqual(conn.answered, conn.answered.map((_, k) => k + 1), `client ${i}, generation ${conn.generation}: answers are a gap-free prefix of what it sent`);
        }
        assert.ok(c.connections.slice(0, -1).every((conn) => conn.answered.length > 0), `client ${i}: each drained connection had its messages answered`);
      }
      // Nothing the app read went unanswered: after its close frame a draining worker hands the app no message.
      const answered = new Set(clients.flatMap((c) => c.connections.flatMap((conn) => conn.answered.map((n) => `${conn.tag}:${n}`))));
      const lastConnections = new Set(clients.map((c) => c.connections.at(-1)!.tag));
      const readButUnanswered = readFileSync(readLog, 'utf8')
        .split('\n')
        .filter((m) => m && !answered.has(m) && !lastConnections.has(m.slice(0, m.indexOf(':'))));
      assert.deepEqual(readButUnanswered, [], 'every message a draining worker read was answered');
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'no old worker waited for the drain timeout');
    } finally {
      for (const c of clients) c.stop();
      await g.stop();
    }
  });
});

describe('the app moves its own WebSockets through the drain hook (onDrain, drainSignal)', () => {
  test("clients get the app's close code; a throwing hook is logged and the drain goes on", async () => {
    const g = await startGraft(fixture('ws-drain-hook.ts'), { workers: 1 });
    const sockets: WebSocket[] = [];
    try {
      const running = await g.waitRunning();
      const closes = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const ws = new WebSocket(`ws://127.0.0.1:${g.port}/`);
          sockets.push(ws);
          const hello = deferred<void>();
          const closed = deferred<number>();
          ws.on('message', () => hello.resolve());
          ws.on('close', (code) => closed.resolve(code));
          ws.on('error', () => {});
          await hello.promise;
          return closed;
        }),
      );
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await Promise.all(closes.map((c) => c.promise)), [4000, 4000, 4000], "every client got the app's own close code");
      const generation = Number(running.generation);
      await g.waitForLog((l) => l.msg === 'generation retired' && l.generation === generation);
      assert.ok(g.logs.some((l) => l.msg === 'a drain hook threw; the drain goes on' && l.generation === generation), 'the throwing hook is logged');
      assert.ok(g.output.some((l) => l.includes(`drain signal aborted in generation ${generation}`)), 'drainSignal aborted');
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'the drain did not wait for its timeout');
    } finally {
      for (const ws of sockets) ws.terminate();
      await g.stop();
    }
  });
});
