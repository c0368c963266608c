import { deferred } from '../core/deferred.js';
import { WorkerEnv, type MasterMessage } from '../core/ipc.js';
import { runningLoops } from '../jobs/loop.js';
import { beginDrain } from './drain-hooks.js';
import { exitFlushed } from './exit.js';
import { config, ctx, log, registry, runtime, send } from './runtime.js';

type DrainMessage = Extract<MasterMessage, { graft: 'drain' }>;

/** A worker sent SIGTERM by hand drains as if its master had asked (and the master replaces it). */
export function retireOnSignal(): void {
  void retire(ownDrain(), { signalled: true });
}

function ownDrain(): DrainMessage {
  return { graft: 'drain', idleCloseMs: Number(process.env[WorkerEnv.idleCloseMs] ?? 1000), lingerMs: Number(process.env[WorkerEnv.lingerMs] ?? 2000) };
}

/**
 * The master is gone (it crashed; its keeper starts a new one on the same
 * sockets, whose workers take the new connections): node:cluster would exit
 * this worker at once, cutting what it holds. It drains instead, as on a
 * reload (requests in flight answered with `Connection: close`, WebSockets
 * moved with 1001, jobs finished), bounded by --graceful-timeout, then exits.
 */
export function retireWhenOrphaned(): void {
  process.removeAllListeners('disconnect');
  process.once('disconnect', () => {
    // stdout and stderr were pipes to the dead master: writes fail from now on, and must not kill the drain.
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    if (!runtime.ready) process.exit(0);
    setTimeout(() => process.exit(0), drainTimeoutMs()).unref();
    void retire(ownDrain()).then(() => exitFlushed(0));
  });
}

/** --graceful-timeout, as the master gave it. */
function drainTimeoutMs(): number {
  return Number(process.env[WorkerEnv.drainTimeoutMs] ?? 30_000);
}

let retiring: Promise<void> | undefined;

/**
 * The worker's retirement, when its master drains it: stop accepting (and
 * tell the master, so it knows this worker is out of the round-robin), tell
 * the app in the words it already understands (ctx.signal and drainSignal
 * abort, its onDrain hooks run and are waited for; its own SIGTERM listeners run, as under any other supervisor: a BullMQ, amqplib or
 * Agenda worker's graceful shutdown stops taking jobs and finishes the ones
 * it holds), stop the job loops (its worker threads' too), finish every
 * connection, run the service's stop(), wait for the app's own shutdown,
 * then wait for the master's word to exit. The master kills what is still
 * running at --graceful-timeout.
 */
export function retire(message: DrainMessage, how: { signalled?: boolean } = {}): Promise<void> {
  retiring ??= drain(message, how);
  return retiring;
}

async function drain(message: DrainMessage, how: { signalled?: boolean }): Promise<void> {
  // Half of --graceful-timeout from now, whatever the app's own shutdown takes before the connections drain.
  const tellCallsAt = Date.now() + drainTimeoutMs() / 2;
  runtime.draining = true;
  const hooks = beginDrain(log);
  registry.stopAccepting();
  log.debug('draining: stopped accepting', { ...registry.stats() });
  // Sent after node:cluster's own close message on the same channel, so when the
  // master reads it this worker is out of the round-robin.
  send({ graft: 'closed' });
  const handlers = process.listeners('SIGTERM').filter((l) => l !== retireOnSignal);
  const appShutdown = handlers.length ? holdExit() : undefined;
  // A real SIGTERM has reached the app's listeners by itself.
  if (!how.signalled) for (const handler of handlers) runHandler(handler, () => appShutdown?.release());
  await Promise.all([...[...runningLoops()].map((l) => l.stop()), config.stopThreadLoops(), hooks]);
  await registry.drain({ idleCloseMs: message.idleCloseMs, lingerMs: message.lingerMs, callGraceMs: Math.max(0, tellCallsAt - Date.now()) });
  try {
    await runtime.service?.stop?.(ctx);
  } catch (err) {
    log.error('service stop() threw', { err });
  }
  if (appShutdown) {
    await appShutdown.done;
    log.debug('the app shut down', { exitCode: process.exitCode });
  }
  // Wait for the master's word: it may still be handing this worker a connection
  // it accepted before our close reached it; node:cluster answers those by
  // passing them on, which needs this process alive.
  send({ graft: 'drained', served: registry.stats().served });
  setTimeout(() => exitFlushed(), 2000).unref();
}

/** A drain hook that throws is logged, and the drain goes on without waiting for the app's shutdown. */
function runHandler(handler: NodeJS.SignalsListener, failed: () => void): void {
  const fail = (err: unknown) => {
    log.error("the app's SIGTERM handler threw; the drain goes on", { err });
    failed();
  };
  try {
    const result = (handler as (signal: NodeJS.Signals) => unknown)('SIGTERM');
    if (result instanceof Promise) result.catch(fail);
  } catch (err) {
    fail(err);
  }
}

/**
 * The app's shutdown ends when it calls process.exit (held until this worker
 * has drained and the master agrees, so a connection on its way is not lost;
 * its exit code is kept) or when nothing of its own keeps the process alive
 * (graft's channel to the master does not count until then).
 */
function holdExit(): { done: Promise<void>; release(): void } {
  const done = deferred<void>();
  const exit = process.exit;
  process.exit = ((code?: number | string | null) => {
    if (code !== undefined && code !== null) process.exitCode = code;
    done.resolve();
  }) as typeof process.exit;
  const channel = process.channel as { ref(): void; unref(): void } | undefined;
  channel?.unref();
  const onBeforeExit = () => done.resolve();
  process.once('beforeExit', onBeforeExit);
  const released = done.promise.then(() => {
    process.exit = exit;
    process.off('beforeExit', onBeforeExit);
    channel?.ref();
  });
  return { done: released, release: () => done.resolve() };
}
