import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { deferred } from '../../src/core/deferred.js';
import { QuietWatch, type QuietLease } from '../../src/worker/quiet-watch.js';
import { goAway } from '../../src/worker/websocket-drain.js';
import { within } from '../helpers/within.js';

/** Short, so that a test waits little for it; no assertion here depends on how fast anything runs. */
const QUIET_MS = 20;

/**
 * A ws server and one client connected to it: the app's WebSocket, the
 * socket under it, and the client's close (its code and reason).
 */
async function connected() {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const serverSide = new Promise<{ ws: WebSocket; socket: Socket }>((resolve) => wss.once('connection', (ws, req) => resolve({ ws, socket: req.socket })));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  const clientClosed = new Promise<[number, string]>((resolve) => client.on('close', (code, reason) => resolve([code, String(reason)])));
  await new Promise((resolve) => client.once('open', resolve));
  const { ws, socket } = await serverSide;
  return {
    ws,
    socket,
    client,
    clientClosed,
    close: () => {
      client.terminate();
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.close();
    },
  };
}

/**
 * Resolves once `quiet` has gone a whole quiet time past every lease it
 * watched before this call: each of them that wrote nothing since has been
 * told it is quiet.
 */
function quietTimePassed(quiet: QuietWatch): Promise<void> {
  return new Promise((resolve) => {
    let rounds = 0;
    const marker: QuietLease = {
      written: () => 0,
      gone: () => false,
      quiet: () => (++rounds === 2 ? resolve() : quiet.watch(marker)),
    };
    quiet.watch(marker);
  });
}

describe('a WebSocket of a draining worker goes away in its protocol’s words', { timeout: 20_000 }, () => {
  test("the app's WebSocket is told of the close (1001) as of any other, and the client too", async () => {
    const c = await connected();
    try {
      const appClosed = new Promise<[number, string]>((resolve) => c.ws.on('close', (code, reason) => resolve([code, String(reason)])));
      goAway(c.socket, new QuietWatch(QUIET_MS));
      assert.deepEqual(await within(c.clientClosed, "the client's close"), [1001, 'server going away']);
      // The client answers the close frame with its code: the app's 'close' event carries it.
      assert.deepEqual((await within(appClosed, "the app's close event"))[0], 1001);
    } finally {
      c.close();
    }
  });

  test('a message the client sends once the WebSocket is moving never reaches the app, not even when ws reads it after the close frame', async () => {
    const c = await connected();
    try {
      const got: string[] = [];
      c.ws.on('message', (m) => got.push(String(m)));
      const first = new Promise((resolve) => c.ws.once('message', resolve));
      c.client.send('before');
      await within(first, 'the first message');
      const appClosed = new Promise((resolve) => c.ws.on('close', resolve));
      goAway(c.socket, new QuietWatch(QUIET_MS));
      c.client.send('after');
      // The client's close frame follows its message on the connection: the app's close comes after ws read the message.
      await within(c.clientClosed, "the client's close");
      await within(appClosed, "the app's close event");
      assert.deepEqual(got, ['before']);
    } finally {
      c.close();
    }
  });

  test('an app that keeps sending is not interrupted: the close waits until the socket has written nothing for the quiet time', async () => {
    const c = await connected();
    try {
      const quiet = new QuietWatch(QUIET_MS);
      // Watched before the WebSocket's socket: at each of the watch's looks, the app sends first, up to the look three quiet times on.
      const done = deferred<void>();
      let since: number | undefined;
      let finished = false;
      let sent = 0;
      quiet.watch({
        written: () => {
          if (since === undefined || finished) return sent;
          c.ws.send(`tick ${++sent}`);
          if (Date.now() - since >= 3 * QUIET_MS) {
            finished = true;
            done.resolve();
          }
          return sent;
        },
        gone: () => finished,
        quiet: () => {},
      });
      const got: string[] = [];
      c.client.on('message', (m) => got.push(String(m)));
      goAway(c.socket, quiet);
      since = Date.now();
      await done.promise;
      assert.equal(c.ws.readyState, WebSocket.OPEN, 'no close frame while the app sends');
      assert.ok(sent > 0);
      assert.deepEqual(await within(c.clientClosed, "the client's close"), [1001, 'server going away']);
      assert.equal(got.length, sent, 'every message the app sent came before the close frame');
    } finally {
      c.close();
    }
  });

  test('a WebSocket the app closed meanwhile (terminate) is not touched', async () => {
    const c = await connected();
    try {
      const quiet = new QuietWatch(QUIET_MS);
      goAway(c.socket, quiet);
      const socketClosed = new Promise((resolve) => c.socket.once('close', resolve));
      c.ws.terminate();
      await socketClosed;
      await quietTimePassed(quiet);
      assert.equal(Object.hasOwn(c.ws, 'emit'), false, 'its events are not taken over');
      assert.equal(c.ws.readyState, WebSocket.CLOSED);
    } finally {
      c.close();
    }
  });

  test('a WebSocket already closing is left to finish its own closing handshake', async () => {
    const c = await connected();
    try {
      c.ws.close(1000, 'app done');
      assert.equal(c.ws.readyState, WebSocket.CLOSING);
      const quiet = new QuietWatch(QUIET_MS);
      goAway(c.socket, quiet);
      assert.equal(c.socket.isPaused(), false, 'still reading: the client answers the close frame');
      assert.deepEqual(await within(c.clientClosed, "the client's close"), [1000, 'app done']);
    } finally {
      c.close();
    }
  });

  test('a socket carrying something else under the name websocket is left alone', async () => {
    const server = createServer((_req, res) => res.end('plain'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = deferred<Socket>();
    server.on('connection', (s) => socket.resolve(s));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      assert.equal(await res.text(), 'plain');
      const s = await socket.promise;
      // Another library's object, open, but not a ws WebSocket (no close()).
      (s as unknown as Record<symbol, unknown>)[Symbol('websocket')] = { readyState: 1 };
      goAway(s, new QuietWatch(QUIET_MS));
      assert.equal(s.isPaused(), false, 'not paused: not a WebSocket');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
