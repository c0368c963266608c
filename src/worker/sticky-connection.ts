import type { Server, Socket } from 'node:net';
import { log, registry } from './runtime.js';

/**
 * `--sticky`: a connection the master accepted and chose this worker for
 * arrives over IPC with the bytes the master read of it. It becomes a
 * connection of the app's server listening under that key, exactly as if that
 * server had accepted it: those bytes are read first, then the socket's own.
 */
export function adoptConnection(key: string, head: string | undefined, socket: Socket | undefined): void {
  if (!socket) return;
  const server = registry.serverFor(key);
  if (!server) {
    log.warn('sticky: a connection arrived for a listener this worker does not have; closed it', { key });
    socket.destroy();
    return;
  }
  // What net.Server does for a connection it accepts: count it, so close() and getConnections() see it.
  const counted = server as Server & { _connections: number };
  const own = socket as Socket & { server?: Server; _server?: Server };
  counted._connections++;
  own.server = server;
  own._server = server;
  if (head) socket.unshift(Buffer.from(head, 'base64'));
  server.emit('connection', socket);
}
