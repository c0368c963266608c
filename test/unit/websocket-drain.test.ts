import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { deferred } from '../../src/core/deferred.js';
import { QuietWatch } from '../../src/worker/quiet-watch.js';
import { goAway } from '../../src/worker/websocket-drain.js';
import { QUIET_MS, quietTimePassed, writingAtEachLook } from '../helpers/quiet.js';
import { within } from '../helpers/within.js';

/**
 * A ws server and one client connected to it: the app's WebSocket, the
 * socket under it, and the client's close (its code and reason). All of it
 * is closed once the test is over.
 */
async function connected(t: TestContext) {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const serverSide = new Promise<{ ws: WebSocket; socket: Socket }>((resolve) => wss.once('connection', (ws, req) => resolve({ ws, socket: req.socket })));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => {});
  t.after(() => {
    client.terminate();
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.close();
  });
  const clientClosed = new Promise<[number, string]>((resolve) => client.on('close', (code, reason) => resolve([code, String(reason)])));
  await new Promise((resolve) => client.once('open', resolve));
  const { ws, socket } = await serverSide;
  return { ws, socket, client, clientClosed };
}

describe('a WebSocket of a draining worker goes away in its protocol’s words', { timeout: 20_000 }, () => {
  test("the app's WebSocket is told of the close (1001) as of any other, and the client too", async (t) => {
    const c = await connected(t);
    const appClosed = new Promise<[number, string]>((resolve) => c.ws.on('close', (code, reason) => resolve([code, String(reason)])));
    goAway(c.socket, new QuietWatch(QUIET_MS));
    assert.deepEqual(await within(c.clientClosed, "the client's close"), [1001, 'server going away']);
    // The client answers the close frame with its code: the app's 'close' event carries it.
    assert.deepEqual((await within(appClosed, "the app's close event"))[0], 1001);
  });

  test('a message the client sends once the WebSocket is moving never reaches the app, not even when ws reads it after the close frame', async (t) => {
    const c = await connected(t);
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
  });

  test('an app that keeps sending is not interrupted: the close waits until the socket has written nothing for the quiet time', async (t) => {
    const c = await connected(t);
    const quiet = new QuietWatch(QUIET_MS);
    // Watched before the WebSocket's socket: at each of the watch's looks, the app sends first, up to the look three quiet times on.
    let sent = 0;
    const app = writingAtEachLook(quiet, () => c.ws.send(`tick ${++sent}`));
    const got: string[] = [];
    c.client.on('message', (m) => got.push(String(m)));
    goAway(c.socket, quiet);
    app.start();
    await app.done;
    assert.equal(c.ws.readyState, WebSocket.OPEN, 'no close frame while the app sends');
    assert.ok(sent > 0);
    assert.deepEqual(await within(c.clientClosed, "the client's close"), [1001, 'server going away']);
    assert.equal(got.length, sent, 'every message the app sent came before the close frame');
  });

  test('a WebSocket the app closed meanwhile (terminate) is not touched', async (t) => {
    const c = await connected(t);
    const quiet = new QuietWatch(QUIET_MS);
    goAway(c.socket, quiet);
    const socketClosed = new Promise((resolve) => c.socket.once('close', resolve));
    c.ws.terminate();
    await socketClosed;
    await quietTimePassed(quiet);
    assert.equal(Object.hasOwn(c.ws, 'emit'), false, 'its events are not taken over');
    assert.equal(c.ws.readyState, WebSocket.CLOSED);
  });

  test('a WebSocket already closing is left to finish its own closing handshake', async (t) => {
    const c = await connected(t);
    c.ws.close(1000, 'app done');
    assert.equal(c.ws.readyState, WebSocket.CLOSING);
    const quiet = new QuietWatch(QUIET_MS);
    goAway(c.socket, quiet);
    assert.equal(c.socket.isPaused(), false, 'still reading: the client answers the close frame');
    assert.deepEqual(await within(c.clientClosed, "the client's close"), [1000, 'app done']);
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
