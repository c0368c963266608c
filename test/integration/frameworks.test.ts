import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { onlyGeneration, root, startGraft, type LogRecord } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

/**
 * Start an example under graft with 2 workers, put it under keep-alive load,
 * reload it 3 times during the load, and check that nobody noticed.
 * `check` gets the graft log for further assertions.
 */
async function reloadUnderLoad(example: string, check?: (logs: LogRecord[]) => void, entry = 'server.ts'): Promise<void> {
  const g = await startGraft(join(root, 'examples', example, entry), { workers: 2 });
  try {
    await g.waitRunning();
    const first = (await (await fetch(g.url)).json()) as { pid: number; generation: string };
    assert.equal(first.generation, '1');
    assert.equal(typeof first.pid, 'number');

    // Every reload, and the drain of the generation it replaced, happens under load.
    const { load, failed } = await underLoad(g.url, async () => {
      for (let i = 0; i < 3; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, `reload ${i + 1} failed: ${r.stderr}`);
      }
      await onlyGeneration(g, 4);
    });
    assert.ok(load.answered > 0, `no requests were answered: ${JSON.stringify(load)}`);
    assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);

    const status = await onlyGeneration(g, 4);
    assert.equal(status.master.generation, 4);
    assert.deepEqual(
      status.workers.map((w) => [w.generation, w.state]),
      [
        [4, 'ready'],
        [4, 'ready'],
      ],
    );

    const res = await fetch(g.url);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { pid: number; generation: string };
    assert.equal(body.generation, '4');
    assert.ok(
      status.workers.some((w) => w.pid === body.pid),
      `answered by pid ${body.pid}, not a generation 4 worker`,
    );

    check?.(g.logs);
  } finally {
    await g.stop();
  }
}

describe('examples survive reloads under keep-alive load', () => {
  for (const example of ['http', 'express', 'fastify', 'koa', 'hono']) {
    test(`${example}: 3 reloads, 32 connections, no request fails`, { timeout: 120_000 }, () => reloadUnderLoad(example));
  }

  // As `nest build` emits it; Nest's enableShutdownHooks() closes the app on the SIGTERM a drain sends, then signals itself again.
  test('nestjs (compiled, enableShutdownHooks): 3 reloads, 32 connections, no request fails', { timeout: 120_000 }, () => reloadUnderLoad('nestjs', undefined, 'main.cjs'));

  test('service (defineService): 3 reloads, each commits only after ready() warmed the cache', { timeout: 120_000 }, () =>
    reloadUnderLoad('service', (logs) => {
      for (const generation of [2, 3, 4]) {
        const commitAt = logs.findIndex((r) => r.msg === 'reload: generation committed' && r.generation === generation);
        assert.ok(commitAt >= 0, `generation ${generation} was never committed`);
        // Every new worker's ready() warmed the cache (the app's own JSON line, with the time the app wrote it)
        // before the worker was reported ready, and that before the commit.
        const readyAt = logs
          .map((r, i) => [r, i] as const)
          .filter(([r]) => r.msg === 'worker ready' && r.generation === generation);
        assert.equal(readyAt.length, 2, `generation ${generation}: ${readyAt.length} 'worker ready' records`);
        for (const [r, i] of readyAt) {
          const warmed = logs.find((l) => l.msg === 'cache warmed' && l.generation === generation && l.pid === r.workerPid);
          assert.ok(warmed, `generation ${generation}: worker ${r.worker} never warmed its cache`);
          assert.ok((warmed.time as number) <= Date.parse(r.time as string), `generation ${generation}: worker ${r.worker} reported ready before its ready() warmed the cache`);
          assert.ok(i < commitAt, `generation ${generation}: worker ${r.worker} reported ready after the commit`);
        }
      }
    }),
  );
});
