import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { hasLingered, lingeringClose } from '../../src/worker/lingering-close.js';

/**
 * A connection on 127.0.0.1 seen from both ends. Both keep their writing side
 * open when the other sends FIN (as an http.Server's sockets do), so each end
 * closes only when the test or the code under test says so; both ends and
 * the server are closed once the test is over.
 */
async function pair(t: TestContext): Promise<{ server: net.Server; socket: net.Socket; client: net.Socket; clientEnded: Promise<void>; clientClosed: Promise<string> }> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  t.after(() => {
    client.destroy();
    void accepted.then((socket) => socket.destroy());
    server.close();
  });
  client.resume();
  let error = '';
  client.on('error', (err: NodeJS.ErrnoException) => (error = `error:${err.code}`));
  const clientEnded = new Promise<void>((resolve) => client.once('end', resolve));
  const clientClosed = new Promise<string>((resolve) => client.once('close', () => resolve(error || 'closed')));
  const socket = await accepted;
  return { server, socket, client, clientEnded, clientClosed };
}

const closed = (socket: net.Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('the lingering close', { timeout: 10_000 }, () => {
  test('sends FIN, keeps reading (and throwing away) what still arrives, and closes once the client ends its side: no reset', async (t) => {
    const p = await pair(t);
    assert.equal(hasLingered(p.socket), false);
    // Unread bytes on a socket nobody reads: closing it now would reset the connection.
    p.client.write('a request the server never reads');
    lingeringClose(p.socket, 60_000);
    assert.equal(hasLingered(p.socket), true);
    await p.clientEnded;
    p.client.end('a request sent after our FIN');
    await closed(p.socket);
    assert.equal(await p.clientClosed, 'closed');
  });

  test('a client that ends its side releases the socket at once, even while our own writes are still queued behind a client that does not read', async (t) => {
    const p = await pair(t);
    p.client.pause();
    // More than the kernel's buffers hold: our FIN stays queued behind it.
    while (p.socket.write(Buffer.alloc(1 << 20)));
    lingeringClose(p.socket, 60_000);
    p.client.end();
    await closed(p.socket);
    assert.equal(p.socket.writableFinished, false);
  });

  test('releases the socket once lingerMs has passed when the client never closes its side', async (t) => {
    const p = await pair(t);
    lingeringClose(p.socket, 1);
    await p.clientEnded;
    await closed(p.socket);
    assert.equal(p.client.destroyed, false, 'the client still has its side open');
  });

  test('a second call changes nothing: the first one\'s linger stands', async (t) => {
    const p = await pair(t);
    lingeringClose(p.socket, 60_000);
    lingeringClose(p.socket, 0);
    // A timer of the same duration set after the second call's would run after it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(p.socket.destroyed, false);
    p.client.end();
    await closed(p.socket);
  });

  test('a socket already destroyed is left alone', async (t) => {
    const p = await pair(t);
    p.socket.destroy();
    lingeringClose(p.socket, 10);
    assert.equal(hasLingered(p.socket), false);
  });

  test('its timer does not keep the process alive', async (t) => {
    const p = await pair(t);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    lingeringClose(p.socket, 60_000);
    assert.equal(timers(), before);
  });
});
