import type { Socket } from 'node:net';

/**
 * Close a connection without resetting a request the client may already have
 * sent: send our FIN, keep reading (and throwing away) whatever still arrives,
 * and release the socket once the client has closed its side or lingerMs has
 * passed. Closing a socket that has unread bytes makes the kernel send RST,
 * which is exactly the failure a client sees on a naive reload.
 */
const ended = new WeakSet<Socket>();

export function hasLingered(socket: Socket): boolean {
  return ended.has(socket);
}

export function lingeringClose(socket: Socket, lingerMs: number): void {
  if (socket.destroyed || ended.has(socket)) return;
  ended.add(socket);
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // The client closed its side: nothing more can arrive, so closing now is safe.
  socket.once('end', () => socket.destroy());
  socket.resume();
  socket.end();
}
