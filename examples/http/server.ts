// A plain node:http service: no graft import, no signal handling. graft gives
// it PORT, drains it on reload and replaces it when it crashes.
import { createServer } from 'node:http';

const startedAt = new Date().toISOString();

const server = createServer((req, res) => {
  if (req.url === '/health') {
    res.end('ok\n');
    return;
  }
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ pid: process.pid, generation: process.env.GRAFT_GENERATION, startedAt }) + '\n');
  }, 5);
});

server.listen(Number(process.env.PORT ?? 3000));
