export { defineService, isService } from './worker/service.js';
export { drainSignal, onDrain } from './worker/drain-hooks.js';
export type { ServiceContext, ServiceDefinition, ServerLike, Service } from './worker/service.js';
export { Slot } from './core/slot.js';
export type { SlotHooks, SlotOptions, SlotEvent, BuildContext, Replaced } from './core/slot.js';
// A slot runs one operation at a time: its owner's queue decides what runs next and what coalesces.
export { Queue, Coalescing } from './core/queue.js';
export type { QueueRules } from './core/queue.js';
export { Generation } from './core/generation.js';
export type { Lease } from './core/lease.js';
export { GraftError, ErrorCodes } from './core/errors.js';
export type { ErrorCode } from './core/errors.js';
export { config, ConfigStore } from './config/store.js';
export type { Config, Register } from './config/store.js';
export type { Snapshot } from './config/snapshot.js';
export type { ConfigSchema, ConfigIssue } from './config/schema.js';
export { resource } from './config/resource.js';
export type { Resource, ResourceOptions } from './config/resource.js';
export { loop } from './jobs/loop.js';
export type { LoopContext, LoopOptions, LoopHandle } from './jobs/loop.js';

export { swappable, Swappable } from './swap/swappable.js';
export type { SwappableOptions, SwappableExports, SwapResult } from './swap/swappable.js';
export type { SwapTrigger, SwapOrder } from './swap/trigger.js';
export type { LeakReport } from './swap/leak-watch.js';

export { collectMetrics } from './observe/metrics-registries.js';
export type { MetricsRegistry } from './observe/metrics-registries.js';

import { isMainThread } from 'node:worker_threads';
import { enableStandalone } from './config/standalone.js';
import { config as store } from './config/store.js';
import { WorkerEnv } from './core/ipc.js';
// Without a graft master, the process loads and watches its own config (in
// its main thread: a worker thread's config follows its main thread's).
if (isMainThread && !process.env[WorkerEnv.entry]) enableStandalone(store as never);
