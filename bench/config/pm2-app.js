// The PM2 side of bench/config: the same service as app.ts, written the way a
// PM2 user writes it. PM2 cannot push config into a running worker, so the app
// reads its config file once at boot; a new config needs `pm2 reload`.
// Plain ESM JavaScript: PM2 does not run .ts.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parse } from 'yaml';

const config = parse(readFileSync(process.env.APP_CONFIG, 'utf8'));
const port = Number(process.env.PORT);

const server = http.createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, greeting: config.greeting, pool: config.db.pool }));
});

// PM2's graceful start (--wait-ready) and stop (close on SIGINT), as its docs say.
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGINT', () => server.close(() => process.exit(0)));
