// A Socket.IO chat on 2+ workers, with no graft import:
//
//   graft start examples/socketio/server.ts --sticky -w 2 --port 3000
//
// --sticky keeps every request of a session (long polling, then the WebSocket
// upgrade) on the worker that holds it; the cluster adapter, set up as
// Socket.IO's cluster guide shows, makes io.emit() reach the clients of every
// worker: graft's master relays its messages (the guide's setupPrimary()).
// On `graft reload`, clients are moved by a WebSocket close 1001 and
// reconnect by themselves to the new generation.
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/cluster-adapter';
import { Server } from 'socket.io';

const httpServer = createServer((_req, res) => res.end(`socket.io chat, generation ${process.env.GRAFT_GENERATION}\n`));
const io = new Server(httpServer, { adapter: createAdapter() });

io.on('connection', (socket) => {
  socket.emit('welcome', { worker: process.pid, generation: process.env.GRAFT_GENERATION });
  // Acked: the client knows its message reached a server.
  socket.on('say', (text: string, ack?: (ok: boolean) => void) => {
    io.emit('said', { text, worker: process.pid });
    ack?.(true);
  });
});

httpServer.listen(Number(process.env.PORT ?? 3000));
