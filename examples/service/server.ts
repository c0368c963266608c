// A service that tells graft when it is ready: a reload commits the new
// generation only after every new worker's ready() resolved, so the old
// workers keep serving while the new ones warm their cache.
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineService } from 'graftjs';

const cache = new Map<string, string>();

export default defineService({
  // Return the server without listening: graft listens on PORT.
  start() {
    return createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ framework: 'service', pid: process.pid, generation: process.env.GRAFT_GENERATION, cached: cache.size }),
      );
    });
  },

  // Simulate warming a cache; graft waits for this before the reload commits.
  async ready() {
    await sleep(300);
    cache.set('greeting', 'hello');
    // A JSON line (as pino writes them) keeps its own time under graft.
    console.log(JSON.stringify({ msg: 'cache warmed', time: Date.now() }));
  },

  // Runs after the worker's connections have drained.
  stop() {
    cache.clear();
  },
});
