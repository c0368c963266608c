// app.js, typed: the same server, for the rows that run a TypeScript entry.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

const port: number = Number(process.env.PORT ?? 3000);
const body: Buffer = Buffer.from('ok\n');

const server = http.createServer((_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});

server.listen(port, '127.0.0.1', () => {
  if (process.env.BENCH_LISTENING) console.log('listening');
  if (process.env.pm_id !== undefined && process.send) process.send('ready');
});

if (process.env.pm_id !== undefined) process.on('SIGINT', () => server.close(() => process.exit(0)));
