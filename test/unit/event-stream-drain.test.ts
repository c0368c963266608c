import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import { endEventStream, http1ContentType } from '../../src/worker/event-stream-drain.js';
import { HttpDrain } from '../../src/worker/http-drain.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
import { responding } from '../helpers/responding.js';

/** A node:http server tracked by graft's drain, answering every request with `handler`. */
async function served(handler: http.RequestListener): Promise<{ drain: HttpDrain; url: string; close(): void }> {
  const server = http.createServer(handler);
  const drain = new HttpDrain(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { drain, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}

/** The response's status line was read; its whole body once it ends. */
function get(url: string): { started: Promise<void>; body: Promise<string> } {
  const started = deferred<void>();
  const body = deferred<string>();
  http.get(url, { agent: false }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      text += chunk;
      started.resolve();
    });
    res.on('end', () => body.resolve(text));
    res.on('error', body.reject);
  });
  return { started: started.promise, body: body.promise };
}

const eventStream = { 'Content-Type': 'text/event-stream' };

describe('a draining worker ends its server-sent events streams', { timeout: 20_000 }, () => {
  test('an event written in pieces is never cut: the stream ends right after a whole event', async () => {
    let n = 0;
    const s = await served((_req, res) => {
      res.writeHead(200, eventStream);
      // Each event in two writes, a turn of the event loop apart; the next event once the last one is whole
      // (however late the timers fire, the app's events never interleave).
      let timer: NodeJS.Timeout | undefined;
      const event = () => {
        const id = ++n;
        res.write(`id: ${id}\n`);
        timer = setTimeout(() => {
          res.write(`data: event ${id}\n\n`);
          timer = setTimeout(event, 8);
        }, 2);
      };
      event();
      res.on('close', () => clearTimeout(timer));
    });
    try {
      const client = get(s.url);
      await client.started;
      // Only an event boundary can end it here: the quiet time is out of reach.
      const drained = s.drain.drain({ idleCloseMs: 60_000, lingerMs: 100, callGraceMs: 60_000 });
      const body = await client.body;
      await drained;
      assert.ok(body.endsWith('\n\n'), JSON.stringify(body.slice(-40)));
      const events = body.split('\n\n').slice(0, -1);
      assert.ok(events.length > 0);
      for (const event of events) assert.match(event, /^id: (\d+)\ndata: event \1$/);
    } finally {
      s.close();
    }
  });

  test('an idle stream ends once it has written nothing for the quiet time', async () => {
    const s = await served((_req, res) => {
      res.writeHead(200, eventStream);
      res.write('id: 1\ndata: only\n\n');
    });
    try {
      const client = get(s.url);
      await client.started;
      const drained = s.drain.drain({ idleCloseMs: 100, lingerMs: 100, callGraceMs: 60_000 });
      assert.equal(await client.body, 'id: 1\ndata: only\n\n');
      await drained;
    } finally {
      s.close();
    }
  });

  test('a response whose headers go out after the drain began, and which writes nothing, ends once quiet', async () => {
    const arrived = deferred<void>();
    const go = deferred<void>();
    const s = await served((_req, res) => {
      arrived.resolve();
      void go.promise.then(() => {
        res.writeHead(200, eventStream);
        res.flushHeaders();
      });
    });
    try {
      const client = get(s.url);
      await arrived.promise;
      const drained = s.drain.drain({ idleCloseMs: 50, lingerMs: 100, callGraceMs: 60_000 });
      go.resolve();
      assert.equal(await client.body, '');
      await drained;
    } finally {
      s.close();
    }
  });

  test('the app writing on after graft ended its stream is told so through its callback, and nothing throws', async () => {
    const late = deferred<{ accepted: boolean; error: Error | null | undefined }>();
    const s = await served((_req, res) => {
      res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
      let k = 0;
      // No 'close' listener: this app never stops writing.
      const timer = setInterval(() => {
        if (!res.writableEnded) return void res.write(`data: ${++k}\n\n`);
        clearInterval(timer);
        const accepted = res.write('data: too late\n\n', (error) => late.resolve({ accepted, error }));
      }, 5);
    });
    try {
      const client = get(s.url);
      await client.started;
      const drained = s.drain.drain({ idleCloseMs: 60_000, lingerMs: 100, callGraceMs: 60_000 });
      assert.doesNotMatch(await client.body, /too late/);
      await drained;
      const { accepted, error } = await late.promise;
      assert.equal(accepted, false);
      assert.equal((error as { code?: string } | null | undefined)?.code, 'GRAFT_STREAM_ENDED');
    } finally {
      s.close();
    }
  });

  test('a response of another type in flight is left to finish by itself', async () => {
    const finish = deferred<void>();
    const s = await served((req, res) => {
      if (req.url === '/events') {
        res.writeHead(200, eventStream);
        return void res.write('data: idle\n\n');
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('part 1\n\n');
      void finish.promise.then(() => res.end('part 2\n'));
    });
    try {
      const plain = get(s.url);
      const events = get(`${s.url}events`);
      await Promise.all([plain.started, events.started]);
      const drained = s.drain.drain({ idleCloseMs: 50, lingerMs: 100, callGraceMs: 60_000 });
      // The quiet time has passed once the idle event stream ended: the plain response is still open.
      await events.body;
      assert.equal(s.drain.inFlight, 1);
      finish.resolve();
      assert.equal(await plain.body, 'part 1\n\npart 2\n');
      await drained;
    } finally {
      s.close();
    }
  });
});

/** A turn of the event loop: an end graft deferred to the next turn has happened. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Far out of reach: only an event boundary ends a stream in these tests. */
const noQuietTime = () => new QuietWatch(60_000);

describe('where an event ends, and which responses are event streams', { timeout: 20_000 }, () => {
  test('an event ends with a blank line in any line ending the format allows, whatever pieces it is written in', async () => {
    const s = await responding('latin1');
    try {
      for (const [first, rest] of [
        ['data: lf\n', '\n'],
        ['data: crlf\r\n', '\r\n'],
        ['data: crlf\r\n\r', '\n'],
        ['data: cr\r', '\r'],
        ['data: c', 'r\r\r'],
      ] as const) {
        const { res, body } = await s.exchange();
        res.setHeader('Content-Type', 'text/event-stream');
        endEventStream(res, () => http1ContentType(res), noQuietTime());
        res.write(first);
        await nextTurn();
        assert.equal(res.writableEnded, false, `not an event's end: ${JSON.stringify(first)}`);
        res.write(rest);
        await nextTurn();
        assert.equal(res.writableEnded, true, `an event's end: ${JSON.stringify(first + rest)}`);
        assert.equal(await body, first + rest);
      }
    } finally {
      s.close();
    }
  });

  test('an event written as bytes ends it as well: a Buffer in pieces, a Uint8Array, a view into a larger one', async () => {
    const s = await responding('latin1');
    try {
      const bytes = new TextEncoder().encode('..data: view\n\n..');
      for (const pieces of [
        [Buffer.from('data: buffer\n'), Buffer.from('\n')],
        [new TextEncoder().encode('data: uint8array\n\n')],
        [bytes.subarray(2, -2)],
      ]) {
        const { res, body } = await s.exchange();
        res.setHeader('Content-Type', 'text/event-stream');
        endEventStream(res, () => http1ContentType(res), noQuietTime());
        for (const [i, piece] of pieces.entries()) {
          res.write(piece);
          await nextTurn();
          assert.equal(res.writableEnded, i === pieces.length - 1, `after piece ${i} of ${pieces.length}`);
        }
        assert.equal(await body, Buffer.concat(pieces).toString('latin1'));
      }
    } finally {
      s.close();
    }
  });

  test('only a response whose Content-Type is text/event-stream is ended, however its headers were given', async () => {
    const s = await responding('latin1');
    try {
      for (const { type, writeHead, eventStream } of [
        { type: 'text/event-stream', writeHead: false, eventStream: true },
        { type: 'text/event-stream', writeHead: true, eventStream: true },
        { type: 'Text/Event-Stream; charset=utf-8', writeHead: true, eventStream: true },
        { type: ' text/event-stream', writeHead: false, eventStream: true },
        { type: ' text/event-stream', writeHead: true, eventStream: true },
        { type: 'text/plain', writeHead: false, eventStream: false },
        { type: 'text/plain', writeHead: true, eventStream: false },
        { type: 'text/event-streams', writeHead: false, eventStream: false },
        { type: 'application/x-text/event-stream', writeHead: false, eventStream: false },
        { type: 'text/plain; profile=text/event-stream', writeHead: true, eventStream: false },
        { type: undefined, writeHead: false, eventStream: false },
        { type: undefined, writeHead: true, eventStream: false },
      ]) {
        const { res, body } = await s.exchange();
        const headers = type === undefined ? {} : { 'Content-Type': type };
        endEventStream(res, () => http1ContentType(res), noQuietTime());
        if (writeHead) res.writeHead(200, headers);
        else for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        res.write('data: one\n\n');
        await nextTurn();
        assert.equal(res.writableEnded, eventStream, `${JSON.stringify(type)}${writeHead ? ' (writeHead)' : ''}`);
        if (!eventStream) res.end('data: two\n\n');
        assert.equal(await body, eventStream ? 'data: one\n\n' : 'data: one\n\ndata: two\n\n');
      }
    } finally {
      s.close();
    }
  });

  test("a node:http response's Content-Type is read from setHeader() and from the headers writeHead() was given", async () => {
    const s = await responding('latin1');
    try {
      const set = await s.exchange();
      set.res.setHeader('Content-Type', 'text/event-stream');
      assert.equal(http1ContentType(set.res), 'text/event-stream', 'before its headers are out');
      set.res.end();

      const given = await s.exchange();
      given.res.writeHead(200, { 'X-Upstream-Content-Type': 'text/event-stream', 'Content-Type': 'text/plain' });
      assert.equal(given.res.getHeader('content-type'), undefined, 'not seen by getHeader()');
      assert.equal(http1ContentType(given.res), 'text/plain');
      given.res.end();

      const spaced = await s.exchange();
      spaced.res.writeHead(200, { 'Content-Type': ' \ttext/event-stream; charset=utf-8' });
      assert.equal(http1ContentType(spaced.res), 'text/event-stream; charset=utf-8');
      spaced.res.end();

      const none = await s.exchange();
      none.res.writeHead(200, { 'X-Content-Type-Options': 'nosniff' });
      assert.equal(http1ContentType(none.res), undefined);
      none.res.end();
      await Promise.all([set.body, given.body, spaced.body, none.body]);
    } finally {
      s.close();
    }
  });
});
