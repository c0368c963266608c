import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { deferred, type Deferred } from '../../src/core/deferred.js';
import { HttpDrain } from '../../src/worker/http-drain.js';

/** A node:http server tracked by graft's drain; /held/NAME answers once the test releases NAME. */
async function served(): Promise<{ server: http.Server; drain: HttpDrain; port: number; arrived: string[]; release(name: string): void; close(): void }> {
  const held = new Map<string, Deferred<void>>();
  const gate = (name: string) => held.get(name) ?? (held.set(name, deferred<void>()), held.get(name)!);
  const arrived: string[] = [];
  const server = http.createServer((req, res) => {
    arrived.push(req.url ?? '');
    if (req.url === '/500') res.statusCode = 500;
    if (req.url === '/404') res.statusCode = 404;
    if (req.url?.startsWith('/held/')) return void gate(req.url.slice('/held/'.length)).promise.then(() => res.end('held'));
    res.end('ok');
  });
  const drain = new HttpDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    drain,
    port: (server.address() as AddressInfo).port,
    arrived,
    release: (name) => gate(name).resolve(),
    close: () => server.close(),
  };
}

/** A raw HTTP/1.1 client on one connection: what it sends, every byte it reads, and how the connection ended. */
class Raw {
  text = '';
  private readonly socket: net.Socket;
  private readonly waiters: Array<() => void> = [];
  /** 'end': the server sent FIN (the client ends its side too); 'error:CODE': a reset or another failure. */
  readonly ended: Promise<string>;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.text += chunk;
      for (const w of this.waiters.splice(0)) w();
    });
    this.ended = new Promise((resolve) => {
      this.socket.once('end', () => {
        this.socket.end();
        resolve('end');
      });
      this.socket.once('error', (err: NodeJS.ErrnoException) => resolve(`error:${err.code}`));
    });
  }

  connected(): Promise<void> {
    return new Promise((resolve) => (this.socket.connecting ? this.socket.once('connect', () => resolve()) : resolve()));
  }

  send(...paths: string[]): void {
    this.socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
  }

  /** Resolves once `count` whole responses have been read. */
  async responses(count: number): Promise<string[]> {
    for (;;) {
      const all = this.text.split(/(?=HTTP\/1\.1 )/).filter((r) => /\r\n\r\n[\s\S]*$/.test(r) && complete(r));
      if (all.length >= count) return all;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function complete(response: string): boolean {
  const [head, body = ''] = response.split('\r\n\r\n');
  const length = /content-length: (\d+)/i.exec(head!)?.[1];
  if (length !== undefined) return body.length >= Number(length);
  return /transfer-encoding: chunked/i.test(head!) ? body.endsWith('0\r\n\r\n') : true;
}

const options = { idleCloseMs: 30, lingerMs: 2000, callGraceMs: 60_000 };

describe('the HTTP drain', { timeout: 20_000 }, () => {
  test('counts what it serves: requests, 5xx answers (4xx are not), requests in flight, open connections', async () => {
    const s = await served();
    const c = new Raw(s.port);
    try {
      c.send('/500', '/404', '/');
      await c.responses(3);
      assert.equal(s.drain.served, 3);
      assert.equal(s.drain.serverErrors, 1);
      assert.equal(s.drain.inFlight, 0);
      assert.equal(s.drain.openConnections, 1);
      c.send('/held/a');
      while (!s.arrived.includes('/held/a')) await new Promise((r) => setImmediate(r));
      assert.equal(s.drain.inFlight, 1);
      s.release('a');
      await c.responses(4);
      assert.equal(s.drain.inFlight, 0);
      assert.equal(s.drain.served, 4);
      assert.equal(s.drain.isHttp, true);
    } finally {
      c.destroy();
      s.close();
    }
  });

  test('stopAccepting closes the listener only: an open keep-alive connection is answered, with Connection: close, and the app cannot cut it', async () => {
    const s = await served();
    const c = new Raw(s.port);
    try {
      c.send('/');
      const [first] = await c.responses(1);
      assert.match(first!, /connection: keep-alive/i);
      s.drain.stopAccepting();
      assert.equal(s.server.listening, false);
      const refused = await new Promise<string>((resolve) => net.connect(s.port, '127.0.0.1').once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')).once('connect', () => resolve('connected')));
      assert.equal(refused, 'ECONNREFUSED');
      // An app's own shutdown (Next.js's server.close()) would destroy idle keep-alive connections at once.
      s.server.closeIdleConnections();
      c.send('/');
      const [, second] = await c.responses(2);
      assert.match(second!, /connection: close/i);
      assert.equal(await c.ended, 'end');
    } finally {
      c.destroy();
      s.close();
    }
  });

  test('a response already in flight when the drain begins is its connection\'s last; its headers not yet out, it says so', async () => {
    const s = await served();
    const c = new Raw(s.port);
    try {
      c.send('/held/b');
      while (!s.arrived.includes('/held/b')) await new Promise((r) => setImmediate(r));
      let settled = false;
      const drained = s.drain.drain(options).then(() => (settled = true));
      s.release('b');
      const [response] = await c.responses(1);
      assert.match(response!, /connection: close/i);
      assert.match(response!, /held$/);
      assert.equal(await c.ended, 'end');
      await drained;
      assert.equal(settled, true);
    } finally {
      c.destroy();
      s.close();
    }
  });

  test('an idle keep-alive connection is closed with a FIN once idle for idleCloseMs, and the drain resolves when it is gone', async () => {
    const s = await served();
    const idle = new Raw(s.port);
    const busy = new Raw(s.port);
    try {
      idle.send('/');
      busy.send('/');
      await Promise.all([idle.responses(1), busy.responses(1)]);
      busy.send('/held/c');
      while (!s.arrived.includes('/held/c')) await new Promise((r) => setImmediate(r));
      let settled = false;
      const drained = s.drain.drain(options).then(() => (settled = true));
      assert.equal(await idle.ended, 'end', 'the idle connection ends without a reset');
      assert.equal(settled, false, 'a connection with a request in flight holds the drain');
      while (s.drain.openConnections > 1) await new Promise((r) => setImmediate(r));
      s.release('c');
      assert.equal(await busy.ended, 'end');
      await drained;
      assert.equal(s.drain.openConnections, 0);
    } finally {
      idle.destroy();
      busy.destroy();
      s.close();
    }
  });

  test('a request pipelined behind a connection\'s last response never reaches the app and is not reset: the client reads a FIN and sends it again elsewhere', async () => {
    const s = await served();
    const c = new Raw(s.port);
    try {
      await c.connected();
      await new Promise<void>((resolve) => {
        const wait = () => (s.drain.openConnections ? resolve() : setImmediate(wait));
        wait();
      });
      s.drain.stopAccepting();
      c.send('/one', '/two');
      assert.equal(await c.ended, 'end');
      assert.equal((await c.responses(1)).length, 1);
      assert.deepEqual(s.arrived, ['/one']);
    } finally {
      c.destroy();
      s.close();
    }
  });

  test('a drain with no connection resolves at once; one with only closed connections too', async () => {
    const s = await served();
    try {
      await s.drain.drain(options);
      assert.equal(s.server.listening, false);
    } finally {
      s.close();
    }
  });

  test('a WebSocket is a lease, not an idle connection: it gets close 1001 once quiet, and the drain waits for its closing handshake', async () => {
    const s = await served();
    const wss = new WebSocketServer({ server: s.server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/`);
    try {
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const echoed = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
      ws.send('hello');
      assert.equal(await echoed, 'hello');
      const closed = new Promise<number>((resolve) => ws.once('close', resolve));
      await s.drain.drain(options);
      assert.equal(await closed, 1001);
    } finally {
      ws.terminate();
      wss.close();
      s.close();
    }
  });

  test('a server that is not HTTP (a raw net.Server) is tracked by its connections only', async () => {
    const server = net.createServer(() => {});
    const drain = new HttpDrain(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      assert.equal(drain.isHttp, false);
      await new Promise((resolve) => socket.once('connect', resolve));
      while (drain.openConnections === 0) await new Promise((r) => setImmediate(r));
      let settled = false;
      const drained = drain.drain(options).then(() => (settled = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(settled, false, 'an open connection holds the drain');
      socket.destroy();
      await drained;
    } finally {
      socket.destroy();
      server.close();
    }
  });
});
