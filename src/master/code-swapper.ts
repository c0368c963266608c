import { GraftError, errorFields } from '../core/errors.js';
import type { SwapReply } from '../core/ipc.js';
import type { Logger } from '../core/log.js';
import { needsReload, type SwapOrder } from '../swap/trigger.js';
import { unobserved, type Observe } from '../observe/observers.js';
import type { ReloadOutcome, WorkerPool } from '../pool/worker-pool.js';
import { WorkerRound } from './worker-round.js';

export interface SwapOutcome {
  mode: 'swap' | 'reload' | 'unchanged';
  /** Why a swap fell back to a worker reload. */
  reason?: string;
  /** The worker generation serving after a fallback reload. */
  generation?: number;
  workers: Array<{ pid: number; generation: number; modules: SwapReply['modules'] }>;
}

/**
 * The master's side of in-process code swap: every live worker loads the new
 * generation and holds it, and only once all have does any make it live (the
 * same round a config version goes through, worker-round.ts); if one fails,
 * all drop it and keep the code they ran. It reports, per worker, which module
 * generation runs. A change no swap can take (a package, a module that
 * declares itself not swappable) becomes a zero-downtime worker reload,
 * automatically and logged. The master's arbiter runs one order at a time and
 * merges the ones that wait.
 */
export class CodeSwapper {
  /** Numbers each swap round, so a worker drops only the swap it was told to. */
  private rounds = 0;

  constructor(
    private readonly pool: WorkerPool,
    private readonly reload: (reason: string) => Promise<ReloadOutcome>,
    private readonly log: Logger,
    private readonly workerTimeoutMs: number,
    private readonly observe: Observe = unobserved,
  ) {}

  async swap(order: SwapOrder): Promise<SwapOutcome> {
    const started = performance.now();
    const named = order.module ? [order.module] : [];
    try {
      const outcome = await this.attempt(order);
      const modules = outcome.mode === 'swap' ? (outcome.workers[0]?.modules.filter((m) => !m.unchanged).map((m) => `${m.module}@${m.generation}`) ?? []) : named;
      this.observe({ type: 'swap', outcome: outcome.mode === 'swap' ? 'ok' : outcome.mode, modules, source: order.source, durationMs: performance.now() - started });
      return outcome;
    } catch (err) {
      const fields = errorFields(err);
      this.observe({ type: 'swap', outcome: 'failed', modules: named, source: order.source, durationMs: performance.now() - started, ...(fields.code ? { code: fields.code } : {}), error: fields.error });
      throw err;
    }
  }

  private async attempt(order: SwapOrder): Promise<SwapOutcome> {
    const packageChange = order.files ? needsReload(order.files) : undefined;
    if (packageChange) return this.fallback(`${packageChange} changed: packages are shared, not swapped`, order);
    const id = ++this.rounds;
    const { round, outcome } = await WorkerRound.prepare<SwapReply>(
      this.pool.liveWorkers(),
      { graft: 'swap-prepare', id, ...(order.module ? { module: order.module } : {}), ...(order.files ? { files: order.files } : {}) },
      { graft: 'swap-abort', id },
      this.workerTimeoutMs,
    );
    if (!outcome.ok) {
      // Every worker dropped the generation it held: all keep running the code they ran.
      const error = outcome.refused[0]!.error;
      const who = outcome.refused.map((f) => `worker ${f.w.pid} (generation ${f.w.generation})`).join(', ');
      this.log.error('swap rejected; the live generation keeps serving', { ...errorFields(error), workers: outcome.refused.map((f) => f.w.pid), source: order.source });
      throw new GraftError(error.code, `${who} rejected the new generation: ${error.message}`, { cause: error, ...(error.detail ? { detail: error.detail } : {}) });
    }
    const answers = outcome.prepared;
    if (answers.length > 0 && answers.every((a) => !a.value.needsReload && a.value.modules.length === 0)) {
      round.abort();
      throw new GraftError(
        'GRAFT_SWAP_NOT_SWAPPABLE',
        'no worker has a swappable module: start graft with --swap (or load modules with swappable()); `graft reload` loads new code in new processes',
      );
    }
    const refusal = answers.find((a) => a.value.needsReload);
    if (refusal) {
      round.abort();
      return this.fallback(refusal.value.needsReload!, order);
    }
    const committed = await round.commit<SwapReply>({ graft: 'swap-commit', id });
    const failed = committed.flatMap((c) => (c.error ? [{ w: c.w, error: c.error }] : []));
    if (failed.length > 0) {
      // A worker that held the new code did not make it live (it died, or stopped answering):
      // a worker reload brings every worker to one version.
      this.log.warn('swap committed in some workers only; reloading the workers so all run one version', { failed: failed.map((f) => f.w.pid), error: failed[0]!.error.message });
      await this.reload('swap: converge').catch(() => {}); // recorded and logged by the reload itself
      throw new GraftError(failed[0]!.error.code, `worker ${failed[0]!.w.pid} (generation ${failed[0]!.w.generation}) did not commit the swap: ${failed[0]!.error.message}`, { cause: failed[0]!.error });
    }
    const result: SwapOutcome = {
      mode: committed.some((c) => c.value?.modules.some((m) => !m.unchanged)) ? 'swap' : 'unchanged',
      workers: committed.map((c) => ({ pid: c.w.pid, generation: c.w.generation, modules: c.value?.modules ?? [] })),
    };
    if (result.mode === 'swap') await this.pool.codeSwapped();
    this.log.info(result.mode === 'swap' ? 'swap applied in every worker' : 'swap: nothing to swap', {
      source: order.source,
      files: order.files,
      modules: result.workers[0]?.modules.filter((m) => !m.unchanged).map((m) => `${m.module}@${m.generation}`),
      workers: result.workers.length,
    });
    return result;
  }

  private async fallback(reason: string, order: SwapOrder): Promise<SwapOutcome> {
    this.log.warn('swap cannot apply in place; falling back to a worker reload', { reason, source: order.source });
    const { generation } = await this.reload('swap: fallback');
    return { mode: 'reload', reason, generation, workers: this.pool.liveWorkers().map((w) => ({ pid: w.pid, generation: w.generation, modules: [] })) };
  }
}

