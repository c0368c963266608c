import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { root, startGraft, type GraftProcess, type LogRecord } from '../helpers/graft.js';
import { load } from '../helpers/load.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The load runs at least this long, and longer if the reloads take longer. */
const LOAD_MS = 5000;
/** An upper bound for autocannon; the test stops the load itself. */
const LOAD_LIMIT_S = 30;

/** How long the service example's ready() warms its cache. */
const SERVICE_WARMUP_MS = 300;

/** Wait until only generation `generation` has workers left (the older ones drained and exited). */
async function onlyGeneration(g: GraftProcess, generation: number) {
  let status = await g.status();
  for (let i = 0; i < 75 && status.workers.some((w) => w.generation !== generation); i++) {
    await sleep(200);
    status = await g.status();
  }
  return status;
}

/**
 * Start an example under graft with 2 workers, put it under keep-alive load,
 * reload it 3 times during the load, and check that nobody noticed.
 * `check` gets the graft log for further assertions.
 */
async function reloadUnderLoad(t: TestContext, example: string, check?: (logs: LogRecord[]) => void): Promise<void> {
  const g = await startGraft(join(root, 'examples', example, 'server.ts'), { workers: 2 });
  try {
    await g.waitRunning();
    const first = (await (await fetch(g.url)).json()) as { pid: number; generation: string };
    assert.equal(first.generation, '1');
    assert.equal(typeof first.pid, 'number');

    // 5 s of load, or longer when the machine is slow: every reload, and the
    // drain of the generation it replaces, must happen under load.
    const startedAt = Date.now();
    const l = load(g.url, { connections: 32, durationS: LOAD_LIMIT_S });
    l.result.catch(() => {}); // awaited below, unless a reload fails first
    try {
      await sleep(300);
      for (let i = 0; i < 3; i++) {
        const r = await g.cli('reload');
        assert.equal(r.code, 0, `reload ${i + 1} failed: ${r.stderr}`);
        await sleep(100);
      }
      await sleep(Math.max(1000, LOAD_MS - (Date.now() - startedAt)));
    } finally {
      l.stop();
    }
    const result = await l.result;
    t.diagnostic(`${result.requests} requests in ${Date.now() - startedAt} ms, p99 ${result.p99} ms: ${JSON.stringify(result)}`);

    assert.ok(result.requests > 0, `no requests were made: ${JSON.stringify(result)}`);
    assert.equal(result.errors, 0, `failed requests: ${JSON.stringify(result)}`);
    assert.equal(result.timeouts, 0, `timeouts: ${JSON.stringify(result)}`);
    assert.equal(result.non2xx, 0, `non-2xx answers: ${JSON.stringify(result)}`);

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
    test(`${example}: 3 reloads, 32 connections, no request fails`, { timeout: 120_000 }, (t) => reloadUnderLoad(t, example));
  }

  test('service (defineService): 3 reloads, each commits only after ready() warmed the cache', { timeout: 120_000 }, (t) =>
    reloadUnderLoad(t, 'service', (logs) => {
      for (const generation of [2, 3, 4]) {
        const commitAt = logs.findIndex((r) => r.msg === 'reload: generation committed' && r.generation === generation);
        assert.ok(commitAt >= 0, `generation ${generation} was never committed`);
        const commit = logs[commitAt]!;
        assert.equal(typeof commit.buildMs, 'number');
        assert.ok(
          (commit.buildMs as number) >= SERVICE_WARMUP_MS,
          `generation ${generation} committed after ${commit.buildMs} ms, before ready() could have warmed the cache`,
        );
        // Every new worker reported ready (after its ready() resolved) before the commit.
        const readyAt = logs
          .map((r, i) => [r, i] as const)
          .filter(([r]) => r.msg === 'worker ready' && r.generation === generation);
        assert.equal(readyAt.length, 2, `generation ${generation}: ${readyAt.length} 'worker ready' records`);
        for (const [r, i] of readyAt) {
          assert.ok(i < commitAt, `generation ${generation}: worker ${r.worker} reported ready after the commit`);
          assert.ok((r.bootMs as number) >= SERVICE_WARMUP_MS, `generation ${generation}: worker ${r.worker} ready after ${r.bootMs} ms`);
        }
      }
    }),
  );
});
