import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as deadline } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { deferred, type Deferred } from '../../src/core/deferred.js';
import { HttpDrain } from '../../src/worker/http-drain.js';
import { hasLingered } from '../../src/worker/lingering-close.js';

/**
 * A node:http server tracked by graft's drain. /held/NAME answers once the test releases NAME; so do
 * /told/NAME (with the Connection header the app sees), /strip/NAME (an app that removes the
 * Connection header), /keep/NAME (an app whose writeHead() insists on keep-alive) and /stream/NAME
 * (its headers and a first chunk out at once); /events is a server-sent events stream that never ends by itself.
 * `arrived` lists the requests the app got, `closed` the responses closed (graft has counted them by then).
 * The server, and the clients made with it, are closed once the test is over.
 */
async function served(t: TestContext) {
  const held = new Map<string, Deferred<void>>();
  const gate = (name: string) => held.get(name) ?? (held.set(name, deferred<void>()), held.get(name)!);
  const arrived: string[] = [];
  const closed: string[] = [];
  const server = http.createServer((req, res) => {
    arrived.push(req.url ?? '');
    res.once('close', () => closed.push(req.url ?? ''));
    if (req.url === '/500') res.statusCode = 500;
    if (req.url === '/404') res.statusCode = 404;
    // An app (or a framework) that emits 'close' on a response once more.
    if (req.url === '/twice') res.once('close', () => res.emit('close'));
    if (req.url === '/events') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).write('data: 1\n\n');
    const [, kind, name] = /^\/(held|told|strip|keep|stream)\/(.*)$/.exec(req.url ?? '') ?? [];
    if (kind === 'stream') res.writeHead(200, { 'content-type': 'text/plain' }).write('a');
    if (kind) {
      return void gate(name!).promise.then(() => {
        if (kind === 'told') return res.end(String(res.getHeader('connection')));
        if (kind === 'strip') res.removeHeader('connection');
        if (kind === 'keep') res.writeHead(200, { connection: 'keep-alive', 'content-length': 4 });
        res.end(kind === 'held' ? 'held' : kind === 'stream' ? 'b' : kind === 'keep' ? 'kept' : kind);
      });
    }
    res.end('ok');
  });
  // Node's own keep-alive timeout (5 s) would close an idle connection too: only graft's drain does here.
  server.keepAliveTimeout = 0;
  const drain = new HttpDrain(server);
  t.after(() => server.close());
  const port = await listening(server);
  return {
    server,
    drain,
    port,
    arrived,
    closed,
    release: (name: string) => gate(name).resolve(),
    /** Resolves once the app has got the request for `url`. */
    arrival: (url: string) => until(() => arrived.includes(url)),
    /** The socket of the next connection the server gets (once it has got it). */
    nextConnection(): () => net.Socket {
      let socket: net.Socket | undefined;
      server.once('connection', (accepted: net.Socket) => (socket = accepted));
      return () => socket!;
    },
    /** A raw client on a new connection. */
    client(): Raw {
      const client = new Raw(port);
      t.after(() => client.destroy());
      return client;
    },
    /** A raw client on a new connection that has sent requests for `urls` (pipelined), once the app has got the last. */
    async requested(...urls: string[]): Promise<Raw> {
      const client = this.client();
      client.send(...urls);
      await until(() => arrived.includes(urls.at(-1)!));
      return client;
    },
    /**
     * A client that keeps its side open after the server's FIN, once the server has its connection: the error
     * it met, if any, and when the server's socket and then the client have closed.
     */
    async halfOpen(): Promise<{ client: net.Socket; error(): string; closed(): Promise<void> }> {
      const serverSocket = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      t.after(() => client.destroy());
      let error = '';
      client.on('error', (err: NodeJS.ErrnoException) => (error = `error:${err.code}`));
      const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const socket = await serverSocket;
      return {
        client,
        error: () => error,
        closed: async () => {
          await new Promise((resolve) => (socket.destroyed ? resolve(undefined) : socket.once('close', resolve)));
          await clientClosed;
        },
      };
    },
  };
}

/** Listens on a free port of 127.0.0.1; resolves with the port. */
async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Resolves once `done()` holds, looking again at each turn of the event loop. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setImmediate(r));
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

/**
 * What --sticky does with a connection the master accepted (sticky-connection.ts): the app's server is
 * handed the socket, with the bytes the master already read of it put back first. The client, and the
 * front that handed its connection over, are closed once the test is over.
 */
async function handedOver(t: TestContext, server: http.Server, head?: string): Promise<Raw> {
  const front = net.createServer((socket) => {
    if (head) socket.unshift(Buffer.from(head));
    server.emit('connection', socket);
  });
  t.after(() => front.close());
  const client = new Raw(await listening(front));
  t.after(() => client.destroy());
  await new Promise<void>((resolve) => front.once('connection', () => resolve()));
  return client;
}

/**
 * A front that reads the first bytes a client sends (its request's head), then hands the connection over with them,
 * as the master does; closed once the test is over.
 */
async function readingFront(t: TestContext, server: http.Server): Promise<{ port: number; handedOver: Promise<net.Socket> }> {
  let handOver!: (socket: net.Socket) => void;
  const handedOver = new Promise<net.Socket>((resolve) => (handOver = resolve));
  const front = net.createServer((socket) =>
    socket.once('data', (head) => {
      socket.pause();
      socket.unshift(head);
      server.emit('connection', socket);
      socket.resume();
      handOver(socket);
    }),
  );
  t.after(() => front.close());
  return { port: await listening(front), handedOver };
}

/**
 * Whether the socket had been ended once idleCloseMs had passed from now. A timer of the same
 * duration that the drain set before this call has run by then; one it sets after, not yet.
 */
function endedAfterIdleTime(socket: () => net.Socket): Promise<boolean> {
  return new Promise((resolve) => setTimeout(() => resolve(socket().writableEnded), options.idleCloseMs));
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function complete(response: string): boolean {
  const at = response.indexOf('\r\n\r\n');
  const head = response.slice(0, at);
  const body = response.slice(at + 4);
  const length = /content-length: (\d+)/i.exec(head)?.[1];
  if (length !== undefined) return body.length >= Number(length);
  return /transfer-encoding: chunked/i.test(head) ? body.endsWith('0\r\n\r\n') : true;
}

const options = { idleCloseMs: 30, lingerMs: 2000, callGraceMs: 60_000 };

describe('the HTTP drain', { timeout: 20_000 }, () => {
  test('counts what it serves: requests, 5xx answers (4xx are not), requests in flight, open connections', async (t) => {
    const s = await served(t);
    const c = s.client();
    c.send('/500', '/404', '/');
    await c.responses(3);
    assert.equal(s.drain.served, 3);
    assert.equal(s.drain.serverErrors, 1);
    assert.equal(s.drain.inFlight, 0);
    assert.equal(s.drain.openConnections, 1);
    c.send('/held/a');
    await s.arrival('/held/a');
    assert.equal(s.drain.inFlight, 1);
    s.release('a');
    await c.responses(4);
    assert.equal(s.drain.inFlight, 0);
    assert.equal(s.drain.served, 4);
    assert.equal(s.drain.isHttp, true);
  });

  test('a response whose close is emitted twice counts once, and its connection still closes when a drain finds it idle', async (t) => {
    const s = await served(t);
    const c = s.client();
    c.send('/twice', '/');
    await c.responses(2);
    // graft's listener runs first, the app's second 'close' within the first: both are over once the app saw '/'s.
    await until(() => s.closed.includes('/twice') && s.closed.includes('/'));
    assert.equal(s.drain.served, 2);
    assert.equal(s.drain.inFlight, 0);
    const drained = await Promise.race([s.drain.drain({ idleCloseMs: 20, lingerMs: 20, callGraceMs: 100 }).then(() => true), deadline(5000, false, { ref: false })]);
    assert.ok(drained, 'the idle connection was closed and the drain ended');
    assert.equal(s.drain.openConnections, 0);
  });

  test('stopAccepting closes the listener only: an open keep-alive connection is answered, with Connection: close, and the app cannot cut it', async (t) => {
    const s = await served(t);
    const c = s.client();
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
  });

  test('a response already in flight when the drain begins is its connection\'s last; its headers not yet out, it says so', async (t) => {
    const s = await served(t);
    const c = await s.requested('/held/b');
    let settled = false;
    const drained = s.drain.drain(options).then(() => (settled = true));
    s.release('b');
    const [response] = await c.responses(1);
    assert.match(response!, /connection: close/i);
    assert.match(response!, /held$/);
    assert.equal(await c.ended, 'end');
    await drained;
    assert.equal(settled, true);
  });

  test('an idle keep-alive connection is closed with a FIN once idle for idleCloseMs, and the drain resolves when it is gone', async (t) => {
    const s = await served(t);
    const idle = s.client();
    const busy = s.client();
    idle.send('/');
    busy.send('/');
    await Promise.all([idle.responses(1), busy.responses(1)]);
    busy.send('/held/c');
    await s.arrival('/held/c');
    let settled = false;
    const drained = s.drain.drain(options).then(() => (settled = true));
    assert.equal(await idle.ended, 'end', 'the idle connection ends without a reset');
    assert.equal(settled, false, 'a connection with a request in flight holds the drain');
    await until(() => s.drain.openConnections <= 1);
    s.release('c');
    assert.equal(await busy.ended, 'end');
    await drained;
    assert.equal(s.drain.openConnections, 0);
  });

  test('a request pipelined behind a connection\'s last response never reaches the app and is not reset: the client reads a FIN and sends it again elsewhere', async (t) => {
    const s = await served(t);
    const c = s.client();
    await c.connected();
    await until(() => s.drain.openConnections !== 0);
    s.drain.stopAccepting();
    c.send('/one', '/two');
    assert.equal(await c.ended, 'end');
    assert.equal((await c.responses(1)).length, 1);
    assert.deepEqual(s.arrived, ['/one']);
  });

  test('a drain with no connection resolves at once; one with only closed connections too', async (t) => {
    const s = await served(t);
    await s.drain.drain(options);
    assert.equal(s.server.listening, false);
  });

  test('a WebSocket is a lease, not an idle connection: it gets close 1001 once quiet, and the drain waits for its closing handshake', async (t) => {
    const s = await served(t);
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
      await until(() => drain.openConnections !== 0);
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

  test('stopAccepting alone: a response in flight becomes its connection\'s last, and the app sees it marked so', async (t) => {
    const s = await served(t);
    const c = await s.requested('/told/a');
    s.drain.stopAccepting();
    s.release('a');
    const [response] = await c.responses(1);
    assert.match(response!, /connection: close/i);
    assert.match(response!, /\r\n\r\nclose$/);
    assert.equal(await c.ended, 'end');
  });

  test('an app that removes the Connection header: its connection\'s last response still closes the connection', async (t) => {
    const s = await served(t);
    const c = await s.requested('/strip/x');
    s.drain.stopAccepting();
    s.release('x');
    const [response] = await c.responses(1);
    assert.doesNotMatch(response!, /connection:/i);
    assert.equal(await c.ended, 'end');
  });

  test('an app whose writeHead() insists on keep-alive keeps its connection open: the next request on it is answered, not dropped', async (t) => {
    const s = await served(t);
    const c = await s.requested('/keep/k');
    s.drain.stopAccepting();
    s.release('k');
    const [kept] = await c.responses(1);
    assert.match(kept!, /connection: keep-alive/i);
    c.send('/after');
    const [, after] = await c.responses(2);
    assert.match(after!, /connection: close/i);
    assert.match(after!, /ok$/);
    assert.deepEqual(s.arrived, ['/keep/k', '/after']);
    assert.equal(await c.ended, 'end');
  });

  test('two pipelined requests in flight when the listener closes: both are answered, the latest with Connection: close, so the client sends again nothing the app ran', async (t) => {
    const s = await served(t);
    const c = await s.requested('/held/p1', '/held/p2');
    assert.equal(s.drain.inFlight, 2);
    s.drain.stopAccepting();
    s.release('p1');
    s.release('p2');
    const [first, second] = await c.responses(2);
    assert.match(first!, /connection: keep-alive/i);
    assert.match(first!, /held$/);
    assert.match(second!, /connection: close/i);
    assert.match(second!, /held$/);
    assert.equal(await c.ended, 'end');
    assert.deepEqual(s.arrived, ['/held/p1', '/held/p2']);
  });

  test('a request that arrives after our FIN never reaches the app, its body is read and thrown away, and the connection closes without a reset', async (t) => {
    const s = await served(t);
    const { client, error, closed } = await s.halfOpen();
    s.drain.stopAccepting();
    let text = '';
    client.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    client.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    // Our FIN: the connection's last response is out.
    await new Promise((resolve) => client.once('end', resolve));
    assert.match(text, /connection: close/i);
    // More than the socket buffers hold: read and thrown away, or the client is reset.
    const body = Buffer.alloc(8 << 20, 'x');
    client.write(`POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.end(body);
    await closed();
    assert.equal(error(), '');
    assert.deepEqual(s.arrived, ['/one']);
  });
  test('a request with a body pipelined behind the connection\'s last response: the app never sees it, its body is read and thrown away, no reset', async (t) => {
    const s = await served(t);
    const { client, error, closed } = await s.halfOpen();
    s.drain.stopAccepting();
    let text = '';
    client.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    const body = Buffer.alloc(8 << 20, 'x');
    client.write(`GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.end(body);
    await closed();
    assert.equal(error(), '');
    assert.match(text, /connection: close/i);
    assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1);
    assert.deepEqual(s.arrived, ['/one']);
  });
  test('a raw net.Server: the drain leaves its connections open (no idle close), and the app\'s own destroySoon() stays net\'s', async () => {
    const server = net.createServer();
    const drain = new HttpDrain(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    client.resume();
    try {
      const socket = await accepted;
      let settled = false;
      const drained = drain.drain(options).then(() => (settled = true));
      assert.equal('closeIdleConnections' in server, false, 'nothing HTTP is added to a net.Server');
      // Were the drain to close this connection once idle, its timer (set first, same duration) would have run before this one.
      await new Promise((resolve) => setTimeout(resolve, options.idleCloseMs));
      assert.equal(socket.writableEnded, false);
      assert.equal(settled, false);
      socket.destroySoon();
      assert.equal(hasLingered(socket), false, 'no lingering close: the app closes its protocol\'s connections as it chooses');
      await drained;
    } finally {
      client.destroy();
      server.close();
    }
  });

  test('stopAccepting on a server the app has already closed does not close it a second time', async (t) => {
    const s = await served(t);
    let closes = 0;
    s.server.on('close', () => closes++);
    await new Promise((resolve) => s.server.close(resolve));
    s.drain.stopAccepting();
    // net.Server would emit its 'close' again on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closes, 1);
  });

  test('a response whose headers were out before the drain ends during it, keep-alive: its connection is closed once idle', async (t) => {
    const s = await served(t);
    const socket = s.nextConnection();
    const c = await s.requested('/stream/s');
    const drained = s.drain.drain(options);
    const endedOnceIdle = endedAfterIdleTime(socket);
    s.release('s');
    const [response] = await c.responses(1);
    assert.match(response!, /connection: keep-alive/i);
    assert.equal(await endedOnceIdle, false, 'idle for idleCloseMs from its response\'s end, not from the drain\'s start');
    assert.equal(await c.ended, 'end');
    await drained;
  });

  test('a connection handed over during the drain (--sticky) is tracked: left idle, it is closed once idle, and the drain waits for it', async (t) => {
    const s = await served(t);
    // A busy connection: its request is in flight.
    await s.requested('/held/h');
    const drained = s.drain.drain(options);
    const late = await handedOver(t, s.server);
    assert.equal(s.drain.openConnections, 2);
    assert.equal(await late.ended, 'end');
    s.release('h');
    await drained;
  });

  test('an event stream that begins during the drain (on a connection handed over then) ends after its event', async (t) => {
    const s = await served(t);
    const drained = s.drain.drain(options);
    const late = await handedOver(t, s.server, 'GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    const [response] = await late.responses(1);
    assert.match(response!, /connection: close/i);
    assert.match(response!, /data: 1\n\n/);
    assert.equal(await late.ended, 'end');
    await drained;
  });

  test('connections open before graft tracked the server (a started service it adopts): their requests and upgrades are served, not counted', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    const port = await listening(server);
    let drain: HttpDrain | undefined;
    let connections = 0;
    // Tracked from inside the second connection's own 'connection' event: graft never sees either open.
    server.on('connection', () => {
      if (++connections === 2) drain = new HttpDrain(server);
    });
    const c = new Raw(port);
    await new Promise<void>((resolve) => server.once('connection', () => resolve()));
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    try {
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const echoed = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
      ws.send('hello');
      assert.equal(await echoed, 'hello');
      c.send('/');
      const [response] = await c.responses(1);
      assert.match(response!, /ok$/);
      assert.equal(drain!.openConnections, 0);
      drain!.stopAccepting();
      c.send('/');
      const [, last] = await c.responses(2);
      assert.match(last!, /connection: close/i);
    } finally {
      c.destroy();
      ws.terminate();
      wss.close();
      server.close();
    }
  });

  test('an HTTP/2 server\'s requests are counted once, by its sessions (its compatibility API emits a request too)', async () => {
    const gate = deferred<void>();
    const server = http2.createServer((_req, res) => void gate.promise.then(() => res.end('ok')));
    const drain = new HttpDrain(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const stream = new Promise<http2.ServerHttp2Stream>((resolve) => server.once('stream', resolve));
    const requested = new Promise((resolve) => server.once('request', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const req = client.request({ ':path': '/' });
      req.resume();
      await requested;
      assert.equal(drain.inFlight, 1);
      const closed = new Promise((resolve) => void stream.then((st) => st.once('close', resolve)));
      gate.resolve();
      await closed;
      assert.equal(drain.inFlight, 0);
      assert.equal(drain.served, 1);
    } finally {
      client.close();
      server.close();
    }
  });

  test('the drain\'s idle-close timers do not keep the process alive', async (t) => {
    const s = await served(t);
    const c = s.client();
    c.send('/');
    await c.responses(1);
    const before = timers();
    const drained = s.drain.drain(options);
    assert.equal(timers(), before);
    assert.equal(await c.ended, 'end');
    await drained;
  });
  test('a request on a connection waiting for its idle close cancels that close: idle time counts again from its response', async (t) => {
    const s = await served(t);
    const socket = s.nextConnection();
    const drained = s.drain.drain(options);
    const late = await handedOver(t, s.server, 'GET /keep/k HTTP/1.1\r\nHost: x\r\n\r\n');
    const endedOnceIdle = endedAfterIdleTime(socket);
    s.release('k');
    const [kept] = await late.responses(1);
    assert.match(kept!, /connection: keep-alive/i);
    assert.equal(await endedOnceIdle, false, 'not closed idleCloseMs after it came in: its response ended later');
    assert.equal(await late.ended, 'end');
    await drained;
  });

  for (const when of ['in the upgrade handler', 'in a later turn (an asynchronous check first)'] as const) {
    test(`a WebSocket upgraded during a drain, ${when}, goes away with 1001 (not cut at the idle close) and the drain ends`, async (t) => {
      const s = await served(t);
      const wss = new WebSocketServer(when === 'in the upgrade handler' ? { server: s.server } : { noServer: true });
      if (when !== 'in the upgrade handler') {
        s.server.on('upgrade', (req, socket, head) => setTimeout(() => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)), 20));
      }
      wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
      const drained = s.drain.drain(options);
      const front = await readingFront(t, s.server);
      const ws = new WebSocket(`ws://127.0.0.1:${front.port}/`);
      try {
        const closed = new Promise<number>((resolve) => ws.once('close', resolve));
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        assert.equal(await closed, 1001);
        await drained;
      } finally {
        ws.terminate();
        wss.close();
      }
    });
  }
  test('two pipelined responses whose headers were out before the drain: the connection is closed once idle after the second ends, not the first', async (t) => {
    const s = await served(t);
    const socket = s.nextConnection();
    const c = await s.requested('/stream/q1', '/stream/q2');
    const drained = s.drain.drain(options);
    s.release('q1');
    await until(() => s.closed.includes('/stream/q1'));
    const endedOnceIdle = endedAfterIdleTime(socket);
    s.release('q2');
    const [, second] = await c.responses(2);
    assert.match(second!, /connection: keep-alive/i);
    assert.equal(await endedOnceIdle, false, 'idle for idleCloseMs from the second response\'s end');
    assert.equal(await c.ended, 'end');
    await drained;
  });

  test('an event stream in flight when the drain begins ends once it has gone quiet', async (t) => {
    const s = await served(t);
    const c = s.client();
    c.send('/events');
    await until(() => c.text.includes('data: 1'));
    const drained = s.drain.drain(options);
    const [response] = await c.responses(1);
    assert.match(response!, /data: 1\n\n\r\n0\r\n\r\n$/);
    assert.equal(await c.ended, 'end');
    await drained;
  });

  test('an HTTP/2 server\'s drain resolves once its sessions have closed', async () => {
    const server = http2.createServer((_req, res) => res.end('ok'));
    const drain = new HttpDrain(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const req = client.request({ ':path': '/' });
      req.resume();
      await new Promise((resolve) => req.once('end', resolve));
      await drain.drain(options);
      assert.equal(drain.openConnections, 0);
    } finally {
      client.destroy();
      server.close();
    }
  });
});
