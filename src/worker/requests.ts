import { resolve } from 'node:path';
import { ConfigInvalid, validateConfig } from '../config/schema.js';
import { listenerFailureFields, type ListenerFailure } from '../config/subscriptions.js';
import { deferred } from '../core/deferred.js';
import { GraftError } from '../core/errors.js';
import type { SwapReply, WorkerRequest } from '../core/ipc.js';
import { swappables } from '../swap/swappable.js';
import { heartbeat } from './heartbeat.js';
import { workerMetrics } from './metrics.js';
import { config, log, send } from './runtime.js';

/** The one config version prepared here and waiting for the master's decision (the master runs one change at a time). */
let staged: { version: number; decide(go: boolean): void; done: Promise<ListenerFailure[]> } | undefined;

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
      case 'swap':
        return send({ graft: 'reply', rid, ok: true, value: await swapModules(request.module, request.files) });
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
 * A swap order from the master: swap the modules it touches, or say a reload
 * is needed (a module that declares itself not swappable; a package change the
 * master has already turned into a reload before sending any order).
 */
async function swapModules(module: string | undefined, files: string[] | undefined): Promise<SwapReply> {
  const targets = swappables().filter((h) => {
    if (module) return h.name === module || h.path === resolve(module);
    if (files) return files.some((f) => h.inputs.includes(resolve(f)));
    return true;
  });
  if (module && targets.length === 0) {
    throw new GraftError('GRAFT_SWAP_NOT_SWAPPABLE', `${module} is not a swappable module of this worker (swappable: ${swappables().map((h) => h.name).join(', ') || 'none'})`);
  }
  const results: SwapReply['modules'] = [];
  for (const h of targets) {
    try {
      const r = await h.swap();
      heartbeat();
      results.push({ module: r.module, generation: r.generation, ...(r.previous !== undefined ? { previous: r.previous } : {}) });
    } catch (err) {
      if (err instanceof GraftError && err.code === 'GRAFT_SWAP_NOT_SWAPPABLE') return { needsReload: err.message, modules: results };
      throw err;
    }
  }
  for (const h of swappables()) {
    if (!targets.includes(h) && h.generation !== undefined) results.push({ module: h.name, generation: h.generation, unchanged: true });
  }
  return { modules: results };
}
