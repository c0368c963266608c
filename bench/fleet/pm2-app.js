// The PM2 side of bench/fleet, part 1: the same service, written the way a PM2
// user writes it: the config file is read once at boot, a change needs `pm2 reload`.
import { readFileSync } from 'node:fs';
import http from 'node:http';

const config = JSON.parse(readFileSync(process.env.APP_CONFIG, 'utf8'));
const server = http.createServer((_req, res) => res.end(JSON.stringify({ pid: process.pid, limit: config.limit })));
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
process.on('SIGINT', () => server.close(() => process.exit(0)));
