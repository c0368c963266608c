import { GraftError, errorFields } from '../core/errors.js';
import type { SwapReply } from '../core/ipc.js';
import type { Logger } from '../core/log.js';
import { needsReload, type SwapOrder } from '../swap/trigger.js';
import { unobserved, type Observe } from '../observe/observers.js';
import type { ReloadOutcome, WorkerPool } from '../pool/worker-pool.js';
import type { WorkerProcess } from '../pool/worker-process.js';

export interface SwapOutcome {
  mode: 'swap' | 'reload' | 'unchanged';
  /** Why a swap fell back to a worker reload. */
  reason?: string;
  /** The worker generation serving after a fallback reload. */
  generation?: number;
  workers: Array<{ pid: number; generation: number; modules: SwapReply['modules'] }>;
}

/**
 * The master's side of in-process code swap: it sends a swap order to every
 * live worker and reports, per worker, which module generation runs. A change
 * no swap can take (a package, a module that declares itself not swappable)
 * becomes a zero-downtime worker reload, automatically and logged. The
 * master's arbiter runs one order at a time and merges the ones that wait.
 */
export class CodeSwapper {
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
    const workers = this.pool.liveWorkers();
    type Answer = { w: WorkerProcess; value: SwapReply; error?: undefined } | { w: WorkerProcess; value?: undefined; error: GraftError };
    const replies = await Promise.all(
      workers.map((w) =>
        w.request({ graft: 'swap', ...(order.module ? { module: order.module } : {}), ...(order.files ? { files: order.files } : {}) }, this.workerTimeoutMs).then(
          (reply): Answer => (reply.ok ? { w, value: reply.value as SwapReply } : { w, error: GraftError.from(reply.error) }),
          (err: unknown): Answer => ({ w, error: err as GraftError }),
        ),
      ),
    );
    const failed = replies.filter((r) => r.error !== undefined);
    if (failed.length > 0) {
      const error = failed[0]!.error!;
      const who = failed.map((f) => `worker ${f.w.pid} (generation ${f.w.generation})`).join(', ');
      this.log.error('swap rejected; the live generation keeps serving', { ...errorFields(error), workers: failed.map((f) => f.w.pid), source: order.source });
      const swapped = replies.filter((r) => r.value?.modules.some((m) => !m.unchanged));
      if (swapped.length > 0) {
        // Some workers took the new code and others refused it: a worker reload
        // brings every worker to one version (or, if the code is broken, keeps the old one).
        this.log.warn('swap applied in some workers only; reloading the workers so all run one version', { swapped: swapped.map((r) => r.w.pid), refused: failed.map((f) => f.w.pid) });
        await this.reload('swap: converge').catch(() => {}); // recorded and logged by the reload itself
      }
      throw new GraftError(error.code, `${who} rejected the new generation: ${error.message}`, { cause: error, ...(error.detail ? { detail: error.detail } : {}) });
    }
    const answers = replies.map((r) => ({ w: r.w, value: r.value! }));
    if (answers.length > 0 && answers.every((a) => !a.value.needsReload && a.value.modules.length === 0)) {
      throw new GraftError(
        'GRAFT_SWAP_NOT_SWAPPABLE',
        'no worker has a swappable module: start graft with --swap (or load modules with swappable()); `graft reload` loads new code in new processes',
      );
    }
    const refusal = answers.find((a) => a.value.needsReload);
    if (refusal) return this.fallback(refusal.value.needsReload!, order);
    const outcome: SwapOutcome = {
      mode: answers.some((a) => a.value.modules.some((m) => !m.unchanged)) ? 'swap' : 'unchanged',
      workers: answers.map((a) => ({ pid: a.w.pid, generation: a.w.generation, modules: a.value.modules })),
    };
    if (outcome.mode === 'swap') await this.pool.codeSwapped();
    this.log.info(outcome.mode === 'swap' ? 'swap applied in every worker' : 'swap: nothing to swap', {
      source: order.source,
      files: order.files,
      modules: outcome.workers[0]?.modules.filter((m) => !m.unchanged).map((m) => `${m.module}@${m.generation}`),
      workers: outcome.workers.length,
    });
    return outcome;
  }

  private async fallback(reason: string, order: SwapOrder): Promise<SwapOutcome> {
    this.log.warn('swap cannot apply in place; falling back to a worker reload', { reason, source: order.source });
    const { generation } = await this.reload('swap: fallback');
    return { mode: 'reload', reason, generation, workers: this.pool.liveWorkers().map((w) => ({ pid: w.pid, generation: w.generation, modules: [] })) };
  }
}

