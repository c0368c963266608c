// The release benchmark's app: plain node:http (5 ms per request, like
// bench/reload/app.js), answering its release's version. A release holding a
// file BAD answers 500 to every other request on host h2 (HOST_ID): a version
// that boots, reports ready, and then fails, on one host. Plain ESM
// JavaScript, run unchanged by graft and by PM2.
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';

const version = readFileSync(new URL('./version.txt', import.meta.url), 'utf8').trim();
const bad = existsSync(new URL('./BAD', import.meta.url)) && process.env.HOST_ID === 'h2';
const port = Number(process.env.PORT ?? 3000);
let n = 0;

const server = http.createServer((req, res) => {
  setTimeout(() => {
    if (bad && n++ % 2) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${version} failing\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${version}\n`);
  }, 5);
});

const underPm2 = process.env.pm_id !== undefined;
server.listen(port, '127.0.0.1', () => {
  if (underPm2 && process.send) process.send('ready');
});
if (underPm2) process.on('SIGINT', () => server.close(() => process.exit(0)));
