import assert from 'node:assert/strict';
import https from 'node:https';
import { describe, test } from 'node:test';
import { fixture, onlyGeneration, startGraft } from '../helpers/graft.js';

/** One HTTPS request on a keep-alive agent; resolves with the status or the error code. */
function get(agent: https.Agent, port: number, path: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path, agent, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('HTTPS through reloads (https.createServer, no graft import)', () => {
  test('keep-alive TLS clients with requests in flight through 3 reloads: every request answered', async () => {
    const g = await startGraft(fixture('https-app.mjs'), { workers: 2 });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
    let running = true;
    const outcomes: Array<number | string> = [];
    try {
      const start = Number((await g.waitRunning()).generation);
      // 8 clients: each alternates quick requests and ones that take 3 s, so reloads find requests in flight.
      const clients = Array.from({ length: 8 }, async (_, i) => {
        for (let n = 0; running && n < 10_000; n++) outcomes.push(await get(agent, g.port, (n + i) % 3 === 0 ? '/slow' : '/'));
      });
      for (let i = 1; i <= 3; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
        await onlyGeneration(g, start + i);
      }
      running = false;
      await Promise.all(clients);
      const failed = outcomes.filter((o) => o !== 200);
      assert.ok(outcomes.length > 50, `only ${outcomes.length} requests`);
      assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} requests failed`);
    } finally {
      running = false;
      agent.destroy();
      await g.stop();
    }
  });
});
