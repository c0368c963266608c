// The memory benchmark's app: plain node:http answering "ok". Run unchanged by
// bare node, by graft (as a worker) and by PM2; app.ts is the same code typed,
// for the TypeScript rows. BENCH_LISTENING=1 prints "listening" once it
// serves, so a bare node process's boot can be timed like a graft worker's.
import http from 'node:http';

const port = Number(process.env.PORT ?? 3000);
const body = Buffer.from('ok\n');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});

server.listen(port, '127.0.0.1', () => {
  if (process.env.BENCH_LISTENING) console.log('listening');
  // PM2's graceful start (--wait-ready): tell the daemon we listen.
  if (process.env.pm_id !== undefined && process.send) process.send('ready');
});

// PM2's graceful stop, as its docs tell an app to do it.
if (process.env.pm_id !== undefined) process.on('SIGINT', () => server.close(() => process.exit(0)));
