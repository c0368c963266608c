// The worker pool on its own, with real worker processes: which config a
// worker forked for a generation starts on, whatever the master's live config says.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { deferred } from '../../src/core/deferred.js';
import type { ConfigPayload } from '../../src/core/ipc.js';
import { createLogger } from '../../src/core/log.js';
import { ServiceLog } from '../../src/logs/service-log.js';
import { DEFAULT_POLICY } from '../../src/pool/restart-policy.js';
import { WorkerPool, type LostWorker } from '../../src/pool/worker-pool.js';
import { fixture, freePort } from '../helpers/graft.js';

const snapshot = (version: number, data: Record<string, unknown>): ConfigPayload => ({ version, hash: `h${version}`, source: 'test', data });

let pool: WorkerPool | undefined;
after(() => pool?.stop(true));

test('a worker replaced in a set built for a config change starts on that change, even before the master made it live', async () => {
  const port = await freePort();
  // What the master's config coordinator holds: while a config change that needs new processes is
  // verified (the new set starts, becomes ready and serves), the previous version is still the live one.
  const live = snapshot(1, { note: 'one' });
  const lost = deferred<LostWorker>();
  pool = new WorkerPool(
    {
      entry: fixture('ready-hooks-app.ts'),
      service: 'worker-set-test',
      workers: 1,
      port,
      readyTimeoutMs: 60_000,
      ready: 'auto',
      heartbeatTimeoutMs: 60_000,
      drainTimeoutMs: 5000,
      idleCloseMs: 100,
      lingerMs: 100,
      firstGeneration: 1,
      swap: false,
      tsx: false,
      builds: undefined,
      config: () => live,
      output: new ServiceLog({ kind: 'stdio' }),
      policy: DEFAULT_POLICY,
      onWorkerLost: (l) => lost.resolve(l),
      onWorkerOverMemory: async () => {},
    },
    createLogger({ role: 'master' }),
  );
  await pool.start();
  assert.deepEqual(pool.liveWorkers().map((w) => w.stats.configVersion), [1]);
  await pool.reload({ config: snapshot(2, { note: 'two' }) });
  const [first] = pool.liveWorkers();
  assert.ok(first);
  assert.equal(first.stats.configVersion, 2);
  const body = async () => (await fetch(`http://127.0.0.1:${port}/`)).text();
  assert.match(await body(), new RegExp(`^2 2 ${first.pid}\n$`));
  // It dies before the coordinator commits version 2: the replacement belongs to the same set.
  process.kill(first.pid, 'SIGKILL');
  const replaced = await pool.replaceLost(await lost.promise);
  assert.equal(replaced.replaced, true);
  const [fresh] = pool.liveWorkers();
  assert.ok(fresh);
  assert.equal(fresh.pid, replaced.workerPid);
  assert.equal(fresh.generation, 2);
  assert.equal(fresh.stats.configVersion, 2, 'the replacement runs the config its generation was built for, not the previous one');
  assert.match(await body(), new RegExp(`^2 2 ${fresh.pid}\n$`));
});
