// The Socket.IO app: a plain Socket.IO 4 server on node:http, no graft
// import, no adapter, run unchanged by graft and by PM2. Greets each client
// with its pid; `work` is acked after 100 ms. For the benchmark's accounting
// only, it appends each `work` it reads to $READS_DIR/<pid> (client id from
// the handshake query, message), synchronously, so a process killed right
// after still has its record.
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const reads = process.env.READS_DIR ? `${process.env.READS_DIR}/${process.pid}` : undefined;
const httpServer = createServer((_req, res) => res.end('ok\n'));
const io = new Server(httpServer);
io.on('connection', (socket) => {
  const client = socket.handshake.query.c;
  socket.emit('hello', { pid: process.pid });
  socket.on('work', (n, ack) => {
    if (reads) appendFileSync(reads, `${client} ${n}\n`);
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
