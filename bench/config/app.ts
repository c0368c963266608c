// The graft side of bench/config: plain node:http, 127.0.0.1 only; every
// response names the worker and the config values it runs.
import { createServer } from 'node:http';
import { config, defineService } from '../lib/graft.js';
import { schema, type AppConfig } from './fixture.js';

export default defineService({
  config: schema,
  start: (ctx) =>
    createServer((_req, res) => {
      const current = config.current as AppConfig;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ pid: process.pid, version: config.version, greeting: current.greeting, pool: current.db.pool }));
    }).listen(ctx.port, '127.0.0.1'),
});
