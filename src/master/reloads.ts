import { errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { reloadTrigger, unobserved, type Observe } from '../observe/observers.js';
import type { PoolChange, ReloadOutcome, WorkerPool } from '../pool/worker-pool.js';

/**
 * Every worker reload, whatever asked for it, goes through here: logged when
 * asked for and when done, and told to the observers (Activity records it for
 * `graft status` and the status page).
 */
export class Reloads {
  constructor(
    private readonly pool: WorkerPool,
    private readonly log: Logger,
    private readonly observe: Observe = unobserved,
  ) {}

  async run(reason: string, change: PoolChange = {}, files?: string[]): Promise<ReloadOutcome> {
    const live = this.pool.generation;
    const started = performance.now();
    const trigger = reloadTrigger(reason);
    this.log.info('reload requested', { reason, generation: live, ...(files ? { files } : {}) });
    try {
      const outcome = await this.pool.reload(change);
      this.log.info('reload done', { reason, generation: outcome.generation, previous: outcome.previous });
      this.observe({ type: 'reload', trigger, reason, outcome: 'ok', durationMs: performance.now() - started, generation: outcome.generation, ...(outcome.previous !== undefined ? { previous: outcome.previous } : {}) });
      return outcome;
    } catch (err) {
      const fields = errorFields(err);
      const abandoned = fields.code === 'GRAFT_STOPPING';
      if (abandoned) this.log.info('reload abandoned: the master is stopping', { reason, generation: live });
      else this.log.error('reload failed; the live generation keeps serving', { reason, generation: live, ...fields });
      this.observe({
        type: 'reload',
        trigger,
        reason,
        outcome: abandoned ? 'abandoned' : 'failed',
        durationMs: performance.now() - started,
        ...(live !== undefined ? { generation: live } : {}),
        ...(fields.code ? { code: fields.code } : {}),
        error: fields.error,
      });
      throw err;
    }
  }
}
