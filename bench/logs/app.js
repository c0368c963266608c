// The benchmark app: on GET /write?n=N&id=ID it writes N pino-format JSON lines
// to its stdout as fast as it can (one write each, as pino does), then a last
// line carrying "done":ID, and answers how long its own writes took. Run
// unchanged by graft and by bare node with its stdout redirected to a file;
// plain ESM JavaScript, so neither side compiles anything.
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';

const head = `{"level":30,"time":`;
const tail = `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},"req":{"method":"GET","url":"/orders/`;

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== '/write') {
    res.end('ok\n');
    return;
  }
  const n = Number(url.searchParams.get('n') ?? 1000);
  const id = url.searchParams.get('id') ?? '';
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    process.stdout.write(`${head}${Date.now()}${tail}${i}"},"responseTime":4,"msg":"request completed"}\n`);
  }
  process.stdout.write(`${head}${Date.now()},"pid":${process.pid},"msg":"done","done":${JSON.stringify(id)}}\n`);
  res.end(`${performance.now() - started}\n`);
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => process.stderr.write('listening\n'));
