import { errorFields } from '../errors.js';
import type { Logger } from '../log.js';
import type { PoolChange, ReloadOutcome, WorkerPool } from './worker-pool.js';

export interface ReloadRecord {
  at: string;
  /** Who asked: `signal`, `control`, `watch`, `config v7`, `swap: fallback`… */
  reason: string;
  ok: boolean;
  generation?: number;
  previous?: number;
  error?: string;
  code?: string;
}

/**
 * Every worker reload, whatever asked for it, goes through here: logged when
 * asked for and when done, and recorded for `graft status`.
 */
export class Reloads {
  last: ReloadRecord | undefined;

  constructor(
    private readonly pool: WorkerPool,
    private readonly log: Logger,
  ) {}

  async run(reason: string, change: PoolChange = {}, files?: string[]): Promise<ReloadOutcome> {
    const live = this.pool.generation;
    this.log.info('reload requested', { reason, generation: live, ...(files ? { files } : {}) });
    try {
      const outcome = await this.pool.reload(change);
      this.last = { at: new Date().toISOString(), reason, ok: true, generation: outcome.generation, ...(outcome.previous !== undefined ? { previous: outcome.previous } : {}) };
      this.log.info('reload done', { reason, generation: outcome.generation, previous: outcome.previous });
      return outcome;
    } catch (err) {
      const fields = errorFields(err);
      this.last = { at: new Date().toISOString(), reason, ok: false, ...fields };
      if (fields.code === 'GRAFT_STOPPING') this.log.info('reload abandoned: the master is stopping', { reason, generation: live });
      else this.log.error('reload failed; the live generation keeps serving', { reason, generation: live, ...fields });
      throw err;
    }
  }
}
