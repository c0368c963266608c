// The WebSocket app: a plain `ws` server on node:http, no graft import, run
// unchanged by graft and by PM2. Greets each client with its pid and answers
// every message 100 ms later (`echo N`). For the benchmark's accounting only,
// it appends each message it reads to $READS_DIR/<pid> (client connection id,
// message, the socket's readyState), synchronously, so a process killed right
// after still has its record.
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const delay = Number(process.env.ECHO_DELAY_MS ?? 100);
const reads = process.env.READS_DIR ? `${process.env.READS_DIR}/${process.pid}` : undefined;
const server = createServer((_req, res) => res.end('ok\n'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  const client = new URL(req.url ?? '/', 'http://localhost').searchParams.get('c');
  ws.send(`hello ${process.pid}`);
  ws.on('message', (data) => {
    if (reads) appendFileSync(reads, `${client} ${data} ${ws.readyState}\n`);
    setTimeout(() => ws.send(`echo ${data}`), delay);
  });
});

// Only under PM2, what its docs ask of an app: --wait-ready's process.send('ready')
// once it listens, and a graceful stop on SIGINT (close the server, exit once closed;
// PM2 SIGKILLs it after --kill-timeout). graft needs neither.
const underPm2 = process.env.pm_id !== undefined;
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  if (underPm2 && process.send) process.send('ready');
});
if (underPm2) process.on('SIGINT', () => server.close(() => process.exit(0)));
