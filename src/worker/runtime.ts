import { config as typedConfig, type ConfigStore } from '../config/store.js';
import { WorkerEnv, type WorkerMessage } from '../core/ipc.js';
import { createLogger, type Logger } from '../core/log.js';
import { drainSignal } from './drain-hooks.js';
import type { Service, ServiceContext } from './service.js';
import { ServerRegistry } from './server-registry.js';
import { setWorkerTitle } from './title.js';

/**
 * Who this worker is (from the environment the master set, read by
 * identify(): a warm worker's arrives after it has loaded all this) and the
 * pieces of its runtime that boot, requests and retirement share.
 */
export let entry: string | undefined;
export let generation = 0;
export let workerIndex = 0;
export let heartbeatMs = 1000;

let logger: Logger = createLogger({ role: 'worker' });
/** The worker's logger; its records name the generation and worker once identify() has run. */
export const log: Logger = {
  debug: (msg, fields) => logger.debug(msg, fields),
  info: (msg, fields) => logger.info(msg, fields),
  warn: (msg, fields) => logger.warn(msg, fields),
  error: (msg, fields) => logger.error(msg, fields),
  child: (fields) => logger.child(fields),
};

// The runtime handles raw snapshots; only the app sees the declared type.
export const config = typedConfig as unknown as ConfigStore<unknown>;

export const ctx: ServiceContext<unknown> = { port: 0, generation, workerIndex, signal: drainSignal, config };

/** Read who this worker is from its environment: the first thing a worker does (worker.ts), before anything reads it. */
export function identify(): void {
  entry = process.env[WorkerEnv.entry];
  generation = Number(process.env[WorkerEnv.generation] ?? 0);
  workerIndex = Number(process.env[WorkerEnv.index] ?? 0);
  heartbeatMs = Number(process.env[WorkerEnv.heartbeatMs] ?? 1000);
  // What `ps` shows: the service, the generation and the worker's place in it.
  setWorkerTitle(`generation ${generation} #${workerIndex}`);
  logger = createLogger({ role: 'worker', generation, worker: workerIndex });
  Object.assign(ctx, { port: Number(process.env.PORT ?? 0), generation, workerIndex });
}

export const registry = new ServerRegistry();

/** What changes as the worker lives: booted, draining, and the defineService the entry exported (if any). */
export const runtime: { ready: boolean; draining: boolean; service: Service<unknown> | undefined } = { ready: false, draining: false, service: undefined };

export function send(message: WorkerMessage, done?: () => void): void {
  if (!process.connected) return done?.();
  process.send!(message, undefined, {}, () => done?.());
}

