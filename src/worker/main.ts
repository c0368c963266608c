/**
 * Worker process entry (cluster exec). Loads the app, reports ready, sends
 * heartbeats, and drains when its master retires it. Exits on its own when the
 * master is gone (node:cluster exits a worker whose IPC channel closes).
 */
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:net';
import { createLogger } from '../log.js';
import { isMasterMessage, WorkerEnv, type MasterMessage, type WorkerMessage } from '../ipc.js';
import { isService, serverOf, type Service, type ServiceContext } from '../service.js';
import { ServerRegistry, type ListenFailure } from './server-registry.js';
import { serializeBootError } from './boot-error.js';

const entry = process.env[WorkerEnv.entry];
const generation = Number(process.env[WorkerEnv.generation] ?? 0);
const workerIndex = Number(process.env[WorkerEnv.index] ?? 0);
const heartbeatMs = Number(process.env[WorkerEnv.heartbeatMs] ?? 1000);
const port = Number(process.env.PORT ?? 0);
const log = createLogger({ role: 'worker', generation, worker: workerIndex });
const drainController = new AbortController();
const ctx: ServiceContext = { port, generation, workerIndex, signal: drainController.signal };

let ready = false;
let draining = false;
let service: Service | undefined;

function send(message: WorkerMessage, done?: () => void): void {
  if (!process.connected) return done?.();
  process.send!(message, undefined, {}, () => done?.());
}

function failBoot(err: unknown): void {
  send({ graft: 'boot-error', error: serializeBootError(err, entry ?? '') }, () => process.exit(1));
  // If the channel is gone the callback may never run.
  setTimeout(() => process.exit(1), 1000).unref();
}

process.on('uncaughtException', (err) => {
  if (!ready) return failBoot(err);
  log.error('uncaught exception; worker exits and the master replaces it', { err });
  process.exit(1);
});

const registry = new ServerRegistry((failure: ListenFailure) => {
  if (failure.unhandled || !ready) failBoot(failure.error);
});
registry.install();

// The terminal's Ctrl-C and hangup reach the whole process group; the master
// decides what happens to workers, so they ignore these. TERM sent to a single
// worker drains it, and the master replaces it.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('SIGQUIT', () => {});
process.on('SIGTERM', () => void drain({ graft: 'drain', idleCloseMs: 1000, lingerMs: 2000 }));

process.on('message', (message: unknown) => {
  if (!isMasterMessage(message)) return;
  if (message.graft === 'drain') void drain(message);
});

async function boot(): Promise<void> {
  if (!entry) throw new Error(`${WorkerEnv.entry} is not set; workers are started by the graft master`);
  const mod = (await import(pathToFileURL(entry).href)) as { default?: unknown };
  service = isService(mod.default) ? mod.default : undefined;
  if (service) {
    const server: Server = serverOf(await service.start(ctx));
    registry.track(server);
    if (!server.listening) server.listen(port);
  }
  await registry.whenListening();
  send({ graft: 'listening', address: registry.addresses().join(', ') });
  await service?.ready?.(ctx);
  ready = true;
  const heartbeat = () => send({ graft: 'heartbeat', ...registry.stats(), rss: process.memoryUsage.rss() });
  send({ graft: 'ready' });
  heartbeat();
  const timer = setInterval(heartbeat, heartbeatMs);
  timer.unref();
}

async function drain(message: Extract<MasterMessage, { graft: 'drain' }>): Promise<void> {
  if (draining) return;
  draining = true;
  drainController.abort();
  log.debug('draining', { ...registry.stats() });
  await registry.drain({ idleCloseMs: message.idleCloseMs, lingerMs: message.lingerMs });
  try {
    await service?.stop?.(ctx);
  } catch (err) {
    log.error('service stop() threw', { err });
  }
  send({ graft: 'drained', served: registry.stats().served }, () => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}

boot().catch(failBoot);
