import cluster, { type Worker } from 'node:cluster';
import { WARM_ENV, WorkerEnv } from '../core/ipc.js';
import { createLogger } from '../core/log.js';
import { primarySettings, WORKER_LOG_ENV } from './worker-exec.js';

/**
 * Warm workers: worker processes a standby master starts while it waits,
 * Node up and graft's worker runtime loaded, nothing of the app (worker/warm.ts). When the standby
 * takes over from a master that crashed, its pool takes these instead of
 * forking, so the restart costs the app's load and listen, not a process
 * start and graft's own load as well. Taken once: after the takeover's first generation the pool
 * forks as always, and those it did not take are stopped. Each costs a Node
 * process with graft's worker runtime loaded (about 65 MB on Node 24) while
 * it waits; `--warm-workers 0` and `--no-standby` have none.
 */
const idle: Worker[] = [];

/** The pool's worker command (WorkerPool sets the same), and `count` workers waiting on it. */
function startWarmWorkers(count: number, options: { tsx: boolean; args: string[]; service: string }): void {
  cluster.setupPrimary(primarySettings(options));
  for (let i = 0; i < count; i++) {
    // The log environment as every worker has it: the log module reads it as it loads, and a warm worker loads it while it waits.
    const worker = cluster.fork({ [WARM_ENV]: '1', [WorkerEnv.service]: options.service, ...WORKER_LOG_ENV });
    // One that could not start (it reports only 'error'), or died waiting, is not there to take: the pool forks instead.
    const drop = () => {
      const at = idle.indexOf(worker);
      if (at >= 0) idle.splice(at, 1);
    };
    worker.on('error', drop);
    worker.once('exit', drop);
    idle.push(worker);
  }
}

/** A warm worker still alive, to be given its generation with a 'warm-start'; undefined when none is left. */
export function takeWarmWorker(): Worker | undefined {
  for (let worker = idle.shift(); worker; worker = idle.shift()) if (worker.process.pid !== undefined && worker.isConnected() && !worker.isDead()) return worker;
  return undefined;
}

/** Stop the warm workers nobody took. */
export function stopWarmWorkers(): number {
  const left = idle.splice(0);
  for (const worker of left) worker.kill();
  return left.length;
}

/**
 * How long a standby waits, once loaded, before it starts its warm workers:
 * a standby is started at every start, upgrade and crash restart, next to a
 * generation that is booting or draining, and a service stopped within this
 * time never needed them. A crash within it is restarted by forking.
 */
export const WARM_DELAY_MS = 5000;

/** How long a retired standby waits for its warm workers to exit (they load no app: they exit at once) before it exits anyway. */
const WARM_STOP_MS = 5000;

/**
 * The standby's warm workers: started after WARM_DELAY_MS (said in one log
 * line), until it takes over (`taken()`: the pool takes them from here).
 *
 * A standby that is retired (SIGTERM from its keeper) stops its warm workers
 * and waits for them before it exits: left behind, they would be reparented
 * to whatever reaps orphans, and a keeper that is PID 1 of a container
 * (Node reaps only its own children) would hold them as zombies. Once it has
 * taken over, the master's own signal handling has SIGTERM.
 */
export function keepWarmWorkers(count: number, options: { tsx: boolean; args: string[]; service: string }): { taken(): void } {
  const timer = setTimeout(() => {
    startWarmWorkers(count, options);
    createLogger({ role: 'standby' }).info('standby warm workers started', { warmWorkers: count });
  }, WARM_DELAY_MS);
  timer.unref();
  const onTerm = () => {
    const exits = idle.map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
    stopWarmWorkers();
    const bound = setTimeout(() => process.exit(0), WARM_STOP_MS);
    bound.unref();
    void Promise.all(exits).then(() => process.exit(0));
  };
  process.once('SIGTERM', onTerm);
  return {
    taken: () => {
      clearTimeout(timer);
      process.off('SIGTERM', onTerm);
    },
  };
}
