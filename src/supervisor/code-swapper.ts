import { Slot } from '../core/slot.js';
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
 * becomes a zero-downtime worker reload, automatically and logged. Orders go
 * through a generation slot: one runs at a time, and the orders that arrive
 * meanwhile merge into a single next one (the union of their files).
 */
export class CodeSwapper {
  private readonly slot: Slot<SwapOutcome, SwapOrder>;

  constructor(
    private readonly pool: WorkerPool,
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {
    this.slot = new Slot<SwapOutcome, SwapOrder>({ build: (ctx) => this.run(ctx.request ?? { source: 'control' }) }, { name: 'swap orders', drainTimeoutMs: 1, merge });
  }

  swap(order: SwapOrder): Promise<SwapOutcome> {
    return this.slot.swap(order).then((g) => g.value);
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
      const swapped = replies.filter((r) => r.reply.ok && (r.reply.value as SwapReply).modules.some((m) => !m.unchanged));
      if (swapped.length > 0) {
        // Some workers took the new code and others refused it: a worker reload
        // brings every worker to one version (or, if the code is broken, keeps the old one).
        this.log.warn('swap applied in some workers only; reloading the workers so all run one version', { swapped: swapped.map((r) => r.w.pid), refused: failed.map((f) => f.w.pid) });
        await this.pool.reload().catch((err: unknown) => this.log.error('converging reload failed', { error: errorMessage(err) }));
      }
      throw new GraftError(error.code, `${who} rejected the new generation: ${error.message}`, error.detail ? { detail: error.detail } : undefined);
    }
    const answers = replies.map((r) => ({ w: r.w, value: (r.reply as { value: SwapReply }).value }));
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

/** Two orders as one: every file of both; a module only if both name the same one. */
function merge(a: SwapOrder, b: SwapOrder): SwapOrder {
  const files = a.files && b.files ? [...new Set([...a.files, ...b.files])] : undefined;
  const module = a.module && a.module === b.module ? a.module : undefined;
  return { source: a.source === b.source ? a.source : `${a.source},${b.source}`, ...(files ? { files } : {}), ...(module ? { module } : {}) };
}
