// The benchmark app: plain node:http, answers every request after 5 ms with a
// small body. One file, run unchanged by bare node:cluster (bench/lib/cluster-primary.js), by
// graft and by PM2, so it is plain ESM JavaScript (PM2 cannot run .ts).
import http from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const body = Buffer.from('ok\n');

const server = http.createServer((req, res) => {
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  }, 5);
});

const underPm2 = process.env.pm_id !== undefined;

server.listen(port, '127.0.0.1', () => {
  // PM2's graceful start (--wait-ready): tell the daemon we listen.
  if (underPm2 && process.send) process.send('ready');
});

// PM2's graceful stop (what its docs tell an app to do): on SIGINT, close the
// server and exit once it is closed; PM2 kills the process after --kill-timeout.
// Only under PM2: under graft a draining worker is told over IPC (its workers
// ignore SIGINT), and under bare node:cluster there is no graceful reload at all.
if (underPm2) {
  process.on('SIGINT', () => {
    server.close(() => process.exit(0));
  });
}
