/**
 * Messages between the master and its workers over the cluster IPC channel.
 * Every message carries `graft` so it never collides with an app's own
 * process.send traffic (PM2-style `'ready'` strings, for instance).
 */
import type { SerializedError } from './errors.js';

export interface WorkerStats {
  inFlight: number;
  served: number;
  connections: number;
  rss: number;
}

export type WorkerMessage =
  | { graft: 'listening'; address: string }
  | { graft: 'ready' }
  | { graft: 'boot-error'; error: SerializedError }
  | ({ graft: 'heartbeat' } & WorkerStats)
  | { graft: 'drained'; served: number };

export type MasterMessage =
  | { graft: 'drain'; idleCloseMs: number; lingerMs: number };

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && typeof (value as { graft?: unknown }).graft === 'string';
}

export function isMasterMessage(value: unknown): value is MasterMessage {
  return isWorkerMessage(value);
}

/** Environment variables the master sets for each worker. */
export const WorkerEnv = {
  entry: 'GRAFT_ENTRY',
  generation: 'GRAFT_GENERATION',
  index: 'GRAFT_WORKER_INDEX',
  heartbeatMs: 'GRAFT_HEARTBEAT_MS',
} as const;
