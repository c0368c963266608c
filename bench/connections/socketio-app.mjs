// The Socket.IO app: a plain Socket.IO 4 server on node:http, no graft
// import, no adapter, run unchanged by graft and by PM2. Greets each client
// with its pid; `work` gets a receipt at once (`got`, so a client knows
// what the server took) and is acked after 100 ms.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const httpServer = createServer((_req, res) => res.end('ok\n'));
const io = new Server(httpServer);
io.on('connection', (socket) => {
  socket.emit('hello', { pid: process.pid });
  socket.on('work', (n, ack) => {
    socket.emit('got', n);
    setTimeout(() => ack({ n, pid: process.pid }), 100);
  });
});

// Only under PM2, what its docs ask of an app: --wait-ready's process.send('ready')
// once it listens, and a graceful stop on SIGINT (close the server, exit once closed;
// PM2 SIGKILLs it after --kill-timeout). graft needs neither.
const underPm2 = process.env.pm_id !== undefined;
httpServer.listen(Number(process.env.PORT), '127.0.0.1', () => {
  if (underPm2 && process.send) process.send('ready');
});
if (underPm2) process.on('SIGINT', () => httpServer.close(() => process.exit(0)));
