import { config as typedConfig, type ConfigStore } from '../config/store.js';
import { WorkerEnv, type WorkerMessage } from '../core/ipc.js';
import { createLogger } from '../core/log.js';
import { drainSignal } from './drain-hooks.js';
import type { Service, ServiceContext } from './service.js';
import { ServerRegistry } from './server-registry.js';

/**
 * Who this worker is (from the environment the master set) and the pieces of
 * its runtime that boot, requests and retirement share.
 */
export const entry = process.env[WorkerEnv.entry];
export const generation = Number(process.env[WorkerEnv.generation] ?? 0);
export const workerIndex = Number(process.env[WorkerEnv.index] ?? 0);

// What `ps` shows: the service, the generation and the worker's place in it.
process.title = `graft worker ${process.env[WorkerEnv.service] ?? ''} generation ${generation} #${workerIndex}`.replace('  ', ' ');
export const heartbeatMs = Number(process.env[WorkerEnv.heartbeatMs] ?? 1000);
export const log = createLogger({ role: 'worker', generation, worker: workerIndex });

// The runtime handles raw snapshots; only the app sees the declared type.
export const config = typedConfig as unknown as ConfigStore<unknown>;

export const ctx: ServiceContext<unknown> = { port: Number(process.env.PORT ?? 0), generation, workerIndex, signal: drainSignal, config };

export const registry = new ServerRegistry();

/** What changes as the worker lives: booted, draining, and the defineService the entry exported (if any). */
export const runtime: { ready: boolean; draining: boolean; service: Service<unknown> | undefined } = { ready: false, draining: false, service: undefined };

export function send(message: WorkerMessage, done?: () => void): void {
  if (!process.connected) return done?.();
  process.send!(message, undefined, {}, () => done?.());
}

