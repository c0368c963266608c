import { isGraftMessage, WARM_ENV, type MasterMessage } from '../core/ipc.js';
import { setWorkerTitle } from './title.js';

/**
 * A warm worker: a worker process a standby master starts ahead of need
 * (pool/warm-workers.ts). It loads graft's worker runtime (main.ts) and
 * nothing of the app, and waits. When the master in control crashes and the
 * standby takes over, its pool takes these instead of forking (a crash
 * restart then costs the app's load, not a process start and graft's load
 * as well): the 'warm-start' message gives the environment and directory a
 * worker forked for that generation would have had, and the worker carries
 * on as any other. Until then it only waits; it exits with its standby
 * (node:cluster ends a worker whose channel closes).
 */
export function isWarm(): boolean {
  return process.env[WARM_ENV] === '1';
}

export function waitUntilTaken(): Promise<void> {
  delete process.env[WARM_ENV];
  setWorkerTitle('warm');
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (!isGraftMessage<MasterMessage>(message) || message.graft !== 'warm-start') return;
      process.off('message', onMessage);
      Object.assign(process.env, message.env);
      if (message.cwd) process.chdir(message.cwd);
      resolve();
    };
    process.on('message', onMessage);
  });
}
