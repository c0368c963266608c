import { GraftError } from '../core/errors.js';
import type { MasterMessage, WorkerRequestBody } from '../core/ipc.js';
import type { WorkerProcess } from '../pool/worker-process.js';

/** A worker that prepared the change, and what it answered. */
export interface Prepared<V> {
  w: WorkerProcess;
  value: V;
}

export type PrepareOutcome<V> =
  | { ok: true; prepared: Array<Prepared<V>> }
  /** Every worker was told to drop the change already. */
  | { ok: false; refused: Array<{ w: WorkerProcess; error: GraftError }> };

/**
 * Every worker moves together, in two phases: each live worker prepares the
 * change and holds it, and only once all have does any commit it; if one
 * refuses (or does not answer in time), every one drops it and nothing
 * changed anywhere. A config version and a code swap both move this way.
 */
export class WorkerRound<V> {
  private constructor(
    readonly workers: WorkerProcess[],
    private readonly abortMessage: MasterMessage,
    private readonly timeoutMs: number,
  ) {}

  /** Phase one: send `prepare` to every worker; on a refusal, `abort` goes to all of them. */
  static async prepare<V>(workers: WorkerProcess[], prepare: WorkerRequestBody, abort: MasterMessage, timeoutMs: number): Promise<{ round: WorkerRound<V>; outcome: PrepareOutcome<V> }> {
    const round = new WorkerRound<V>(workers, abort, timeoutMs);
    type Answer = { w: WorkerProcess; value: V; error?: undefined } | { w: WorkerProcess; error: GraftError };
    const replies = await Promise.all(
      workers.map((w) =>
        w.request(prepare, timeoutMs).then(
          (reply): Answer => (reply.ok ? { w, value: reply.value as V } : { w, error: GraftError.from(reply.error) }),
          (err: unknown): Answer => ({ w, error: GraftError.wrap(err, `worker ${w.pid} did not answer ${prepare.graft}`) }),
        ),
      ),
    );
    const refused = replies.flatMap((r) => (r.error ? [{ w: r.w, error: r.error }] : []));
    if (refused.length > 0) {
      round.abort();
      return { round, outcome: { ok: false, refused } };
    }
    return { round, outcome: { ok: true, prepared: replies.flatMap((r) => (r.error ? [] : [{ w: r.w, value: r.value }])) } };
  }

  /** The change will not go live after all: every worker drops what it holds. */
  abort(): void {
    for (const w of this.workers) w.send(this.abortMessage);
  }

  /** Phase two: every worker makes the change live; each one's answer or failure (one that fails is its caller's to repair). */
  async commit<C>(commit: WorkerRequestBody): Promise<Array<{ w: WorkerProcess; value: C; error?: undefined } | { w: WorkerProcess; value?: undefined; error: GraftError }>> {
    return Promise.all(
      this.workers.map(async (w) => {
        try {
          const reply = await w.request(commit, this.timeoutMs);
          if (!reply.ok) throw GraftError.from(reply.error);
          return { w, value: reply.value as C };
        } catch (err) {
          return { w, error: GraftError.wrap(err, `worker ${w.pid} did not answer ${commit.graft}`) };
        }
      }),
    );
  }
}
