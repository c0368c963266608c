import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import { HttpDrain } from '../../src/worker/http-drain.js';

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
      // Each event in two writes, a turn of the event loop apart.
      const timer = setInterval(() => {
        res.write(`id: ${++n}\n`);
        setTimeout(() => res.write(`data: event ${n}\n\n`), 2);
      }, 10);
      res.on('close', () => clearInterval(timer));
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
