import { GraftError, type SerializedError } from '../core/errors.js';
import type { RecentActivity } from '../observe/activity.js';
import type { ConfigInheritance } from '../config/history.js';
import type { CarriedOrdersState } from '../bus/carried-orders.js';
import { FIRST_LISTENER_FD, keeperPid, predecessorGone, spawnSuccessor, type MasterChild } from './keeper-link.js';
import type { InheritedListener } from '../net/listeners.js';
import type { MetricSet } from '../observe/metrics.js';

/**
 * The handover protocol of a master upgrade (`graft upgrade`, SIGUSR2). Node 20
 * has no execve, so the master starts its successor (same command line, the
 * graft code and Node as they are on disk now) with the listening sockets as
 * inherited fds and what it must carry on (worker count, generation numbers,
 * config version, history and overrides) over the IPC channel. Both accept on
 * the same sockets until the successor's workers are ready; then the old
 * master stops accepting and hands over the control socket. The port is never
 * closed. Under a keeper (keeper.ts) the keeper starts the successor and
 * carries these messages between the two.
 */
const ENV = 'GRAFT_UPGRADE';
const STATE_TIMEOUT_MS = 10_000;

export interface UpgradeState {
  from: number;
  listeners: InheritedListener[];
  /** The successor's own number as a master generation. */
  masterGeneration: number;
  workers: number;
  firstGeneration: number;
  config: ConfigInheritance;
  /** The `graft config apply --set` layer. */
  overrides: Record<string, unknown>;
  /** The carried-out orders the fleet registry shows, and the config orders a fleet rollback may undo. */
  carried?: CarriedOrdersState;
  /** graft's counters and histograms so far (--metrics): the successor's go on from them. */
  metrics?: MetricSet;
  /** Recent reloads, swaps and worker replacements, for the status page. */
  activity?: RecentActivity;
  /** How many times the keeper restarted a crashed master of this service so far. */
  masterRestarts?: number;
}

type HandoverMessage =
  | { graft: 'upgrade-state'; state: UpgradeState }
  | { graft: 'upgrade-ready'; pid: number }
  | { graft: 'upgrade-failed'; error: SerializedError }
  | { graft: 'take-control' }
  | { graft: 'in-control' };

/** In a successor: what the predecessor hands over (undefined for a master started by hand). */
export function takeUpgradeState(): Promise<UpgradeState | undefined> {
  const from = process.env[ENV];
  delete process.env[ENV]; // workers must not inherit it
  if (!from || !process.connected) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new GraftError('GRAFT_UPGRADE_FAILED', `the previous master (pid ${from}) did not send what to take over within ${STATE_TIMEOUT_MS} ms`));
    }, STATE_TIMEOUT_MS);
    const onMessage = (message: HandoverMessage) => {
      if (message?.graft !== 'upgrade-state') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(message.state);
    };
    process.on('message', onMessage);
  });
}

export interface Successor {
  pid: number;
  /** Tell the successor to take the control socket; resolves once it confirms, rejects (and kills it) otherwise. */
  handOver(): Promise<void>;
  /** Kill it (an upgrade that failed after it was ready). */
  kill(): void;
}

/**
 * Start a successor and wait until its workers serve; rejects (and kills it)
 * if they don't. If the signal aborts first (this master is stopping), the
 * successor is stopped too, gracefully, and awaited.
 */
export function startSuccessor(options: {
  listeners: Array<{ key: string; fd: number; handle: unknown }>;
  state: Omit<UpgradeState, 'from' | 'listeners'>;
  readyTimeoutMs: number;
  /** How long a stopping successor may take to drain before it is killed. */
  drainTimeoutMs: number;
  signal: AbortSignal;
}): Promise<Successor> {
  const state: UpgradeState = {
    ...options.state,
    from: process.pid,
    listeners: options.listeners.map((l, i) => ({ key: l.key, fd: FIRST_LISTENER_FD + i })),
  };
  const child = spawnSuccessor({ env: { [ENV]: String(process.pid) }, listeners: options.listeners });
  // A send to a successor that died must not crash this master; a spawn that failed ends it.
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.on('error', (err) => {
      if (child.pid === undefined) {
        spawnError = err;
        resolve();
      }
    });
  });
  return new Promise<Successor>((resolve, reject) => {
    const settle = () => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const fail = (message: string, detail?: string) => {
      settle();
      child.kill('SIGKILL');
      reject(new GraftError('GRAFT_UPGRADE_FAILED', `${message}; the current master keeps serving`, detail ? { detail } : undefined));
    };
    const onAbort = () => {
      settle();
      // Its workers may already serve: it drains them like any stopping master.
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), options.drainTimeoutMs + 5000);
      void exited.then(() => {
        clearTimeout(kill);
        reject(options.signal.reason);
      });
    };
    const timer = setTimeout(() => fail(`the new master was not ready within ${options.readyTimeoutMs} ms`), options.readyTimeoutMs);
    options.signal.addEventListener('abort', onAbort, { once: true });
    void exited.then(() => {
      if (spawnError) fail(`the new master could not be started: ${spawnError.message}`);
    });
    child.once('spawn', () => child.send({ graft: 'upgrade-state', state } satisfies HandoverMessage));
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`the new master exited (${signal ?? `code ${code}`}) before it was ready`);
    const onMessage = (message: HandoverMessage) => {
      if (message?.graft === 'upgrade-failed') {
        fail(`the new master failed to start: ${message.error.code}: ${message.error.message}`, message.error.detail);
      } else if (message?.graft === 'upgrade-ready') {
        settle();
        resolve({ pid: message.pid, handOver: () => handOver(child), kill: () => child.kill('SIGKILL') });
      }
    };
    child.once('exit', onExit);
    child.on('message', onMessage);
  });
}

/** How long a successor may take to confirm it holds the control socket. */
const HANDOVER_TIMEOUT_MS = 10_000;

/**
 * Tell the successor to take control; resolves only once it confirms. If it
 * fails, exits or stays silent instead, it is killed and this rejects: the
 * caller keeps (or takes back) control.
 */
function handOver(child: MasterChild): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const fail = (reason: string) => {
      settle();
      child.kill('SIGKILL');
      reject(new GraftError('GRAFT_UPGRADE_FAILED', `the new master did not take control: ${reason}; the current master keeps serving`));
    };
    const onMessage = (message: HandoverMessage) => {
      if (message?.graft === 'in-control') {
        settle();
        child.release();
        resolve();
      } else if (message?.graft === 'upgrade-failed') {
        fail(`${message.error.code}: ${message.error.message}`);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`it exited (${signal ?? `code ${code}`})`);
    const timer = setTimeout(() => fail(`no answer within ${HANDOVER_TIMEOUT_MS} ms`), HANDOVER_TIMEOUT_MS);
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ graft: 'take-control' } satisfies HandoverMessage);
  });
}

/** In a successor: report readiness, then wait for the predecessor to hand over control. */
export function awaitHandover(): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    const onMessage = (message: HandoverMessage) => {
      if (message?.graft !== 'take-control') return;
      cleanup();
      resolve();
    };
    const onDisconnect = () => {
      cleanup();
      resolve(); // the predecessor is gone: take control anyway
    };
    const cleanup = () => {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
    };
    process.on('message', onMessage);
    process.once('disconnect', onDisconnect);
    void predecessorGone().then(onDisconnect);
    process.send!({ graft: 'upgrade-ready', pid: process.pid } satisfies HandoverMessage);
  });
}

export function reportInControl(): void {
  if (!process.connected) return;
  process.send!({ graft: 'in-control' } satisfies HandoverMessage, undefined, {}, () => {
    // The channel to a predecessor is done with; the one to a keeper stays for the next upgrade.
    if (process.connected && keeperPid() === undefined) process.disconnect();
  });
}

export function reportUpgradeFailed(error: GraftError): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!({ graft: 'upgrade-failed', error: error.toJSON() } satisfies HandoverMessage, undefined, {}, () => resolve());
  });
}
