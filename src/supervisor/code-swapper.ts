import { GraftError, errorMessage } from '../errors.js';
import type { SwapReply } from '../ipc.js';
import type { Logger } from '../log.js';
import { needsReload, type SwapOrder } from '../swap/trigger.js';
import type { WorkerPool } from './worker-pool.js';

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
 * becomes a zero-downtime worker reload, automatically and logged. Orders run
 * one at a time.
 */
export class CodeSwapper {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly pool: WorkerPool,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {}

  swap(order: SwapOrder): Promise<SwapOutcome> {
    const next = this.queue.then(() => this.run(order));
    this.queue = next.catch(() => {});
    return next;
  }

  private async run(order: SwapOrder): Promise<SwapOutcome> {
    const packageChange = order.files ? needsReload(order.files) : undefined;
    if (packageChange) return this.fallback(`${packageChange} changed: packages are shared, not swapped`, order);
    const workers = this.pool.liveWorkers();
    const replies = await Promise.all(
      workers.map((w) =>
        w.request({ graft: 'swap', ...(order.module ? { module: order.module } : {}), ...(order.files ? { files: order.files } : {}) }, this.timeoutMs).then(
          (reply) => ({ w, reply }),
          (err: unknown) => ({ w, reply: { graft: 'reply' as const, rid: 0, ok: false as const, error: { code: 'GRAFT_SWAP_LOAD', message: errorMessage(err) } } }),
        ),
      ),
    );
    const failed = replies.filter((r) => !r.reply.ok);
    if (failed.length > 0) {
      const first = failed[0]!.reply as { error: { code: string; message: string; detail?: string } };
      const who = failed.map((f) => `worker ${f.w.pid} (generation ${f.w.generation})`).join(', ');
      const error = GraftError.from(first.error);
      this.log.error('swap rejected; the live generation keeps serving', { code: error.code, workers: failed.map((f) => f.w.pid), error: error.message, source: order.source });
      throw new GraftError(error.code, `${who} rejected the new generation: ${error.message}`, error.detail ? { detail: error.detail } : undefined);
    }
    const answers = replies.map((r) => ({ w: r.w, value: (r.reply as { value: SwapReply }).value }));
    const refusal = answers.find((a) => a.value.needsReload);
    if (refusal) return this.fallback(refusal.value.needsReload!, order);
    const outcome: SwapOutcome = {
      mode: answers.some((a) => a.value.modules.some((m) => !m.unchanged)) ? 'swap' : 'unchanged',
      workers: answers.map((a) => ({ pid: a.w.pid, generation: a.w.generation, modules: a.value.modules })),
    };
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
    const { generation } = await this.pool.reload();
    return { mode: 'reload', reason, generation, workers: this.pool.liveWorkers().map((w) => ({ pid: w.pid, generation: w.generation, modules: [] })) };
  }
}
