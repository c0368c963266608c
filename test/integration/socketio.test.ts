import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { deferred } from '../../src/core/deferred.js';
import { fixture, startGraft, waitFor } from '../helpers/graft.js';

interface Hello {
  generation: number;
  pid: number;
}

interface Ask {
  at: number;
  answered: boolean;
  settled: boolean;
}

/**
 * A Socket.IO client as an app writes one: default transports (long polling,
 * then the WebSocket upgrade), reconnection left to the library. Each client
 * comes from its own address (X-Forwarded-For, as behind a proxy), so the
 * sticky master spreads them over the workers.
 */
class Client {
  readonly socket: Socket;
  readonly hellos: Hello[] = [];
  readonly disconnects: string[] = [];
  connectErrors = 0;
  readonly asks: Ask[] = [];
  readonly heard: Array<{ text: string; pid: number }> = [];
  private waiting: { generation: number; done: () => void } | undefined;

  constructor(
    url: string,
    address: string,
    readonly retries = false,
  ) {
    // With `retries`, Socket.IO resends a message whose ack did not come (at-least-once delivery).
    this.socket = io(url, { extraHeaders: { 'x-forwarded-for': address }, ...(retries ? { retries: 5, ackTimeout: 3000 } : {}) });
    this.socket.on('connect_error', () => this.connectErrors++);
    this.socket.on('disconnect', (reason) => this.disconnects.push(reason));
    this.socket.on('heard', (h: { text: string; pid: number }) => this.heard.push(h));
    this.socket.on('hello', (h: Hello) => {
      this.hellos.push(h);
      if (this.waiting && h.generation >= this.waiting.generation) this.waiting.done();
    });
  }

  get hello(): Hello | undefined {
    return this.hellos.at(-1);
  }

  /** Resolves once this client is connected to the given generation (or a later one). */
  on(generation: number): Promise<void> {
    if (this.socket.connected && (this.hello?.generation ?? 0) >= generation) return Promise.resolve();
    const d = deferred<void>();
    this.waiting = { generation, done: () => d.resolve() };
    return d.promise;
  }

  /** One acknowledged message; the ack waits up to 5 s (a reconnect included). */
  async work(n: number): Promise<void> {
    const ask: Ask = { at: Date.now(), answered: false, settled: false };
    this.asks.push(ask);
    try {
      await (this.retries ? this.socket.emitWithAck('work', n) : this.socket.timeout(5000).emitWithAck('work', n));
      ask.answered = true;
    } catch {
      // counted below: an ask that was never answered
    } finally {
      ask.settled = true;
    }
  }

  close(): void {
    this.socket.close();
  }
}

function clients(port: number, count: number, options: { retries?: (i: number) => boolean } = {}): Client[] {
  return Array.from({ length: count }, (_, i) => new Client(`http://127.0.0.1:${port}`, `10.0.${Math.floor(i / 200)}.${(i % 200) + 1}`, options.retries?.(i)));
}

describe('Socket.IO with --sticky (no graft import)', () => {
  test('a plain `new Server(httpServer)` app on 2 workers: default transports connect with no error and every ack arrives, also after `graft upgrade`', async () => {
    const g = await startGraft(fixture('socketio-app.mjs'), { workers: 2, args: ['--sticky'] });
    let all: Client[] = [];
    try {
      const running = await g.waitRunning();
      all = clients(g.port, 20);
      await Promise.all(all.map((c) => c.on(Number(running.generation))));
      // Long polling first, then the upgrade, then 30 acked messages each: every request of a session reaches its worker.
      await Promise.all(all.map(async (c) => {
        for (let n = 0; n < 30; n++) await c.work(n);
      }));
      for (const [i, c] of all.entries()) {
        assert.equal(c.connectErrors, 0, `client ${i}: no connect error`);
        assert.deepEqual(c.disconnects, [], `client ${i}: never disconnected`);
        assert.equal(c.asks.filter((a) => !a.answered).length, 0, `client ${i}: every ack arrived`);
      }
      assert.equal(new Set(all.map((c) => c.hello!.pid)).size, 2, 'clients are spread over both workers');

      // The master's successor keeps routing by session: clients move to its workers with no error.
      const r = await g.cli('upgrade');
      assert.equal(r.code, 0, r.stderr);
      const generation = (await g.status()).master.generation;
      await Promise.all(all.map((c) => c.on(generation)));
      await Promise.all(all.map(async (c) => {
        for (let n = 0; n < 10; n++) await c.work(n);
      }));
      for (const [i, c] of all.entries()) {
        assert.equal(c.connectErrors, 0, `client ${i}: no connect error after the upgrade`);
        assert.deepEqual(c.disconnects, ['transport close'], `client ${i}: moved once, by the library`);
        assert.equal(c.asks.filter((a) => !a.answered).length, 0, `client ${i}: every ack arrived after the upgrade`);
      }
    } finally {
      for (const c of all) c.close();
      await g.stop();
    }
  });

  test('with the cluster adapter (graft runs the primary part): a broadcast reaches every worker\'s clients; through 5 reloads under traffic no client errs, every ack asked outside a reload arrives, and with retries every ack arrives', async (t) => {
    const g = await startGraft(fixture('socketio-app.mjs'), { workers: 2, args: ['--sticky'], env: { ADAPTER: '1' } });
    let all: Client[] = [];
    let sending = true;
    const traffic: Array<Promise<void>> = [];
    try {
      const running = await g.waitRunning();
      // Half of them ask Socket.IO to resend what was not acked.
      all = clients(g.port, 10, { retries: (i) => i % 2 === 1 });
      let generation = Number(running.generation);
      await Promise.all(all.map((c) => c.on(generation)));
      for (const c of all) {
        traffic.push((async () => {
          // A resending client sends one message at a time (Socket.IO queues them anyway); the others one every 50 ms.
          for (let n = 0; sending && n < 100_000; n++) await (c.retries ? c.work(n) : Promise.race([c.work(n), new Promise((r) => setTimeout(r, 50))]));
        })());
      }
      const reloads: Array<[number, number]> = [];
      for (let i = 0; i < 5; i++) {
        const asked = Date.now();
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
        generation++;
        // Every client reconnects by itself to the generation that took over.
        await Promise.all(all.map((c) => c.on(generation)));
        reloads.push([asked, Date.now()]);
      }
      sending = false;
      await Promise.all(traffic);
      // Settle every ack still on its way (5 s each; a resending client's 5 tries of 3 s).
      await waitFor(() => all.every((c) => c.asks.every((a) => a.settled)), 30_000, 'acks settled');

      // A broadcast from one worker reaches the clients of both.
      assert.equal(new Set(all.map((c) => c.hello!.pid)).size, 2, 'clients are spread over both workers');
      all[0]!.socket.emit('shout', 'everyone');
      await waitFor(() => all.every((c) => c.heard.some((h) => h.text === 'everyone')), 15_000, 'every client heard the broadcast');

      const duringReload = (at: number) => reloads.some(([from, to]) => at >= from && at <= to);
      let lostInReloads = 0;
      for (const [i, c] of all.entries()) {
        assert.equal(c.connectErrors, 0, `client ${i}: no connect error`);
        assert.deepEqual(c.disconnects.filter((r) => r !== 'transport close'), [], `client ${i}: every disconnect is the transport closing (the library reconnects), none a deliberate server disconnect`);
        assert.equal(c.disconnects.length, 5, `client ${i}: moved once per reload`);
        const lost = c.asks.filter((a) => !a.answered);
        assert.deepEqual(lost.filter((a) => !duringReload(a.at)), [], `client ${i}: every ack asked outside a reload arrived`);
        if (c.retries) assert.deepEqual(lost, [], `client ${i} (with retries): every ack arrived`);
        lostInReloads += lost.length;
      }
      const asked = all.reduce((n, c) => n + c.asks.length, 0);
      assert.ok(asked > 200, `only ${asked} acked messages were sent`);
      t.diagnostic(`${asked} acked messages, ${lostInReloads} unanswered (all sent without retries while a drain closed their connection)`);
      assert.equal(g.output.some((l) => l.includes('GRAFT_DRAIN_TIMEOUT')), false, 'no old worker waited for the drain timeout');
    } finally {
      sending = false;
      for (const c of all) c.close();
      await g.stop();
    }
  });
});
