/**
 * Messages between the master and its workers over the cluster IPC channel.
 * Every message carries `graft` so it never collides with an app's own
 * process.send traffic (PM2-style `'ready'` strings, for instance).
 */
import type { SerializedError } from './errors.js';

export interface WorkerStats {
  inFlight: number;
  served: number;
  /** Of those, responses with a 5xx status (HTTP/1.1). */
  serverErrors?: number;
  connections: number;
  rss: number;
  /** Config version the worker runs (0 before its first snapshot). */
  configVersion: number;
  /** Swappable modules and the generation of each that serves, as `name@generation` (moduleName() takes the name back). */
  modules?: string[];
}

/** A config snapshot as the master sends it: merged sources, not yet validated. */
export interface ConfigPayload {
  version: number;
  hash: string;
  source: string;
  data: Record<string, unknown>;
}

export interface ConfigIssuePayload {
  path: string;
  message: string;
}

/** Requests the master sends and a worker answers with a `reply` carrying the same rid. */
export type WorkerRequest =
  /** timeoutMs: how long the master waits for each answer, so the worker bounds its wait for its threads within it. */
  | { graft: 'config-prepare'; rid: number; config: ConfigPayload; timeoutMs?: number }
  | { graft: 'config-commit'; rid: number; version: number }
  | { graft: 'config-check'; rid: number; config: ConfigPayload }
  | { graft: 'config-get'; rid: number }
  /** Load the new generation of the modules the order touches and hold it until swap-commit or swap-abort with the same id. */
  | { graft: 'swap-prepare'; rid: number; id: number; module?: string; files?: string[] }
  | { graft: 'swap-commit'; rid: number; id: number }
  /** The worker's Prometheus metrics, as prom-client's getMetricsAsJSON() gives them. */
  | { graft: 'metrics'; rid: number };

/** A request as the caller writes it; WorkerProcess.request adds the rid. */
export type WorkerRequestBody = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'rid'> : never) : never;

export type WorkerReply =
  | { graft: 'reply'; rid: number; ok: true; value?: unknown }
  | { graft: 'reply'; rid: number; ok: false; error: SerializedError; issues?: ConfigIssuePayload[] };

export type WorkerMessage =
  /** The worker listens for messages now and asks for its config snapshot. */
  | { graft: 'hello' }
  /** The entry has booted (listening, or a job worker): from now on it is drained, not killed. */
  | { graft: 'listening'; address: string }
  | { graft: 'ready'; configVersion: number; restartOn: string[] }
  | { graft: 'boot-error'; error: SerializedError }
  | ({ graft: 'heartbeat' } & WorkerStats)
  /** The worker's listeners are closed: node:cluster hands it no new connection from here on. */
  | { graft: 'closed' }
  | { graft: 'drained'; served: number }
  /** The worker's last message: everything queued before it has been written. */
  | { graft: 'bye' }
  | WorkerReply;

export type MasterMessage =
  | { graft: 'drain'; idleCloseMs: number; lingerMs: number }
  /** The prepared version will not be committed (another worker refused it): drop it. */
  | { graft: 'config-abort'; version: number }
  /** The prepared swap will not be committed (another worker refused it, or it needs a reload): drop it. */
  | { graft: 'swap-abort'; id: number }
  /** Answers 'drained': every connection handoff the master sent before it has been answered, so the worker may exit. */
  | { graft: 'exit' }
  | { graft: 'config-init'; config: ConfigPayload }
  /** An accepted connection of the listener `key` (sent with the socket, `--sticky`), and the bytes the master already read of it (base64). */
  | { graft: 'connection'; key: string; head?: string }
  /** To a warm worker (pool/warm-workers.ts): it is taken into a generation, with the environment and directory a worker forked for it would have had. */
  | { graft: 'warm-start'; env: Record<string, string>; cwd?: string }
  | WorkerRequest;

/** A graft message (either direction), as opposed to an app's own process.send traffic. */
export function isGraftMessage<M extends WorkerMessage | MasterMessage>(value: unknown): value is M {
  return typeof value === 'object' && value !== null && typeof (value as { graft?: unknown }).graft === 'string';
}

/** What a worker answers to swap-prepare (the generations it holds) and to swap-commit (the ones that went live). */
export interface SwapReply {
  /** Set when the change can't be swapped in place (a package changed, a module is not swappable). */
  needsReload?: string;
  modules: Array<{ module: string; generation: number; previous?: number; unchanged?: boolean }>;
}

/** Set for a warm worker: a worker process a standby master starts ahead of need, that waits for its 'warm-start'. */
export const WARM_ENV = 'GRAFT_WARM';

/** Environment variables the master sets for each worker. */
export const WorkerEnv = {
  entry: 'GRAFT_ENTRY',
  /** The entry as the master compiled it for this worker's generation (a TypeScript entry): what the worker imports. */
  code: 'GRAFT_ENTRY_CODE',
  generation: 'GRAFT_GENERATION',
  /** The service's name (`--name`), for the worker's process title. */
  service: 'GRAFT_SERVICE',
  index: 'GRAFT_WORKER_INDEX',
  heartbeatMs: 'GRAFT_HEARTBEAT_MS',
  idleCloseMs: 'GRAFT_IDLE_CLOSE_MS',
  lingerMs: 'GRAFT_LINGER_MS',
  /** --graceful-timeout: how long a worker whose master died may take to finish what it holds. */
  drainTimeoutMs: 'GRAFT_DRAIN_TIMEOUT_MS',
  /** Set for `graft start --swap`: the entry is a handler module loaded as swappable generations. */
  swap: 'GRAFT_SWAP',
  /** Set for `graft start --metrics`: the worker collects prom-client's default metrics from its boot on. */
  metrics: 'GRAFT_METRICS',
  /** `graft start --ready`: when a worker whose entry is not a defineService counts as ready. */
  ready: 'GRAFT_READY',
} as const;

/**
 * `--ready`: `listen` once its servers listen; `load` once its entry has
 * evaluated (and any listen() it called completed); `message` once the app
 * says `process.send('ready')` (PM2's wait_ready); `auto`, the default, the
 * first of those, where `load` waits LOAD_SETTLE_MS for a listen() that an
 * async start may still make.
 */
export const READY_MODES = ['auto', 'listen', 'load', 'message'] as const;
export type ReadyMode = (typeof READY_MODES)[number];

/** The module's name in a heartbeat's `name@generation`. */
export function moduleName(reported: string): string {
  return reported.replace(/@[^@]*$/, '');
}
