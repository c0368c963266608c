import { resolve } from 'node:path';
import { ConfigInvalid, validateConfig } from '../config/schema.js';
import { listenerFailureFields, type ListenerFailure } from '../config/subscriptions.js';
import { deferred } from '../core/deferred.js';
import { GraftError } from '../core/errors.js';
import type { SwapReply, WorkerRequest } from '../core/ipc.js';
import { swappables, type Swappable, type SwapResult } from '../swap/swappable.js';
import { heartbeat } from './heartbeat.js';
import { workerMetrics } from './metrics.js';
import { config, log, send } from './runtime.js';

/** The one config version prepared here and waiting for the master's decision (the master runs one change at a time). */
let staged: { version: number; decide(go: boolean): void; done: Promise<ListenerFailure[]> } | undefined;

/** The one swap prepared here (new module generations built and verified) and waiting for the master's decision. */
let stagedSwap: { id: number; decide(go: boolean): void; done: Promise<SwapResult[]>; targets: Swappable<unknown>[] } | undefined;

/** How long a prepared swap waits for the master's decision before it is dropped (as a prepared config version does). */
const SWAP_DECISION_TIMEOUT_MS = 30_000;

/** Answer a request from the master with a reply carrying its rid. */
export async function answer(request: WorkerRequest): Promise<void> {
  const { rid } = request;
  try {
    switch (request.graft) {
      case 'config-prepare':
        await prepare(request.config.version, request.config.source, request.config.data, request.timeoutMs);
        return send({ graft: 'reply', rid, ok: true });
      case 'config-commit': {
        const failures = await commit(request.version);
        return send({ graft: 'reply', rid, ok: true, value: { version: config.version, failures } });
      }
      case 'config-check': {
        const checked = await validateConfig(config.declaredSchema, request.config.data);
        if ('issues' in checked) throw new ConfigInvalid(checked.issues, request.config.source);
        return send({ graft: 'reply', rid, ok: true, value: checked.value });
      }
      case 'config-get':
        return send({ graft: 'reply', rid, ok: true, value: config.loaded ? config.snapshotInfo : undefined });
      case 'swap-prepare':
        return send({ graft: 'reply', rid, ok: true, value: await prepareSwap(request.id, request.module, request.files) });
      case 'swap-commit':
        return send({ graft: 'reply', rid, ok: true, value: await commitSwap(request.id) });
      case 'metrics':
        return send({ graft: 'reply', rid, ok: true, value: await workerMetrics() });
    }
  } catch (err) {
    const error = GraftError.wrap(err, `worker ${process.pid} failed to answer ${request.graft}`);
    send({ graft: 'reply', rid, ok: false, error: error.toJSON(), ...(err instanceof ConfigInvalid ? { issues: err.issues } : {}) });
  }
}

/** The master will not commit the staged version: drop it. */
export function abort(version: number): void {
  if (staged?.version !== version) return;
  staged.decide(false);
  staged = undefined;
}

/**
 * Phase one: validate, and hold the version (the store's slot waits for the
 * decision). Worker threads take no part here: they see a version only once
 * it is committed, all at once through the board (config/threads/board.ts).
 */
async function prepare(version: number, source: string, data: Record<string, unknown>, masterTimeoutMs: number | undefined): Promise<void> {
  // The master runs one change at a time: a version still staged was given up (its master timed out or went away).
  if (staged) abort(staged.version);
  const decision = deferred<boolean>();
  const valid = deferred<void>();
  // The commit waits for busy threads, but answers the master before it gives up on this worker.
  const threadTimeoutMs = masterTimeoutMs === undefined ? undefined : Math.floor(masterTimeoutMs * 0.8);
  const done = config.apply({ version, source, read: () => data, decision: decision.promise, onValid: () => valid.resolve(), threadTimeoutMs });
  staged = { version, decide: decision.resolve, done };
  try {
    await Promise.race([valid.promise, done]);
  } catch (err) {
    staged = undefined;
    throw err;
  }
}

/** Phase two: make the staged version live; subscriptions (the main thread's and every worker thread's) run before the answer goes back. */
async function commit(version: number): Promise<ListenerFailure[]> {
  const held = staged;
  if (held?.version !== version) {
    throw new GraftError('GRAFT_CONFIG_APPLY_FAILED', `config version ${version} was committed without being prepared here (prepared: ${held ? held.version : 'none'})`);
  }
  staged = undefined;
  held.decide(true);
  const failures = await held.done;
  for (const f of failures) log.error('config listener failed', listenerFailureFields(config.version, f));
  log.info('config applied', { configVersion: config.version, changed: config.snapshotInfo.changed });
  heartbeat();
  return failures;
}

/**
 * Phase one of a swap order: load the new generation of every module it
 * touches and hold them, or say a reload is needed (a module that declares
 * itself not swappable; a package change the master has already turned into a
 * reload before sending any order). If one module fails, none is held.
 */
async function prepareSwap(id: number, module: string | undefined, files: string[] | undefined): Promise<SwapReply> {
  // The master runs one swap at a time: a swap still staged was given up (its master timed out or went away).
  if (stagedSwap) abortSwap(stagedSwap.id);
  const targets = swappables().filter((h) => {
    if (module) return h.name === module || h.path === resolve(module);
    if (files) return files.some((f) => h.inputs.includes(resolve(f)));
    return true;
  });
  if (module && targets.length === 0) {
    throw new GraftError('GRAFT_SWAP_NOT_SWAPPABLE', `${module} is not a swappable module of this worker (swappable: ${swappables().map((h) => h.name).join(', ') || 'none'})`);
  }
  const decision = deferred<boolean>();
  const swaps = targets.map((h) => {
    const prepared = deferred<number>();
    const done = h.swap({ decision: decision.promise, onPrepared: prepared.resolve });
    done.catch(prepared.reject);
    return { h, prepared: prepared.promise, done };
  });
  const done = Promise.all(swaps.map((s) => s.done));
  done.catch(() => {}); // dropped swaps reject; the commit reads the outcome
  // Staged at once: an abort that arrives while the modules still load (another worker refused first) drops them.
  const timer = setTimeout(() => abortSwap(id), SWAP_DECISION_TIMEOUT_MS);
  timer.unref();
  stagedSwap = {
    id,
    decide: (go) => {
      clearTimeout(timer);
      decision.resolve(go);
    },
    done,
    targets,
  };
  const outcomes = await Promise.allSettled(swaps.map((s) => s.prepared));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) {
    abortSwap(id);
    await Promise.allSettled(swaps.map((s) => s.done));
    const err: unknown = failure.reason;
    if (err instanceof GraftError && err.code === 'GRAFT_SWAP_NOT_SWAPPABLE') return { needsReload: err.message, modules: [] };
    throw err;
  }
  const held = swaps.map((s, i) => {
    const generation = (outcomes[i] as PromiseFulfilledResult<number>).value;
    return { module: s.h.name, generation, ...(s.h.generation !== undefined ? { previous: s.h.generation } : {}) };
  });
  return { modules: [...held, ...unchanged(targets)] };
}

/** The master will not commit the staged swap: drop it (the live generations keep serving). */
export function abortSwap(id: number): void {
  if (stagedSwap?.id !== id) return;
  stagedSwap.decide(false);
  stagedSwap = undefined;
}

/** Phase two: the held generations go live. */
async function commitSwap(id: number): Promise<SwapReply> {
  const held = stagedSwap;
  if (held?.id !== id) throw new GraftError('GRAFT_SWAP_ABORTED', `swap ${id} was committed without being prepared here (prepared: ${held ? held.id : 'none'})`);
  stagedSwap = undefined;
  held.decide(true);
  const results = await held.done;
  heartbeat();
  return { modules: [...results.map((r) => ({ module: r.module, generation: r.generation, ...(r.previous !== undefined ? { previous: r.previous } : {}) })), ...unchanged(held.targets)] };
}

function unchanged(targets: Swappable<unknown>[]): SwapReply['modules'] {
  return swappables().flatMap((h) => (!targets.includes(h) && h.generation !== undefined ? [{ module: h.name, generation: h.generation, unchanged: true }] : []));
}
