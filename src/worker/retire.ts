import { runningLoops } from '../jobs/loop.js';
import type { MasterMessage } from '../core/ipc.js';
import { config, ctx, drainController, log, registry, runtime, send } from './runtime.js';

/**
 * The worker's retirement, when its master drains it: stop accepting (and
 * tell the master, so it knows this worker is out of the round-robin), stop
 * the job loops (its worker threads' too), finish every connection, run the service's stop(), then wait
 * for the master's word to exit.
 */
export async function retire(message: Extract<MasterMessage, { graft: 'drain' }>): Promise<void> {
  if (runtime.draining) return;
  runtime.draining = true;
  drainController.abort();
  log.debug('draining', { ...registry.stats() });
  registry.stopAccepting();
  // Sent after node:cluster's own close message on the same channel, so when the
  // master reads it this worker is out of the round-robin.
  send({ graft: 'closed' });
  await Promise.all([...[...runningLoops()].map((l) => l.stop()), config.stopThreadLoops()]);
  await registry.drain({ idleCloseMs: message.idleCloseMs, lingerMs: message.lingerMs });
  try {
    await runtime.service?.stop?.(ctx);
  } catch (err) {
    log.error('service stop() threw', { err });
  }
  // Wait for the master's word: it may still be handing this worker a connection
  // it accepted before our close reached it; node:cluster answers those by
  // passing them on, which needs this process alive.
  send({ graft: 'drained', served: registry.stats().served });
  setTimeout(() => process.exit(0), 2000).unref();
}
