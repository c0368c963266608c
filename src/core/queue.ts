import { deferred, type Deferred } from './deferred.js';
import { GraftError } from './errors.js';

export interface QueueRules<C, O = unknown> {
  /** Carry out one entry; what it resolves with is the answer to everyone who asked for it. */
  handle(command: C): Promise<O>;
  /**
   * A later entry folded into one still waiting (both askers get its
   * outcome), or undefined to queue it behind (so an entry is never itself
   * undefined). Default: nothing merges.
   */
  merge?(waiting: C, later: C): C | undefined;
  /**
   * Entries that do not wait their turn (a stop): they run at once, beside
   * the one in flight; everything still queued, and everything asked for
   * later, is refused.
   */
  preempts?(command: C): boolean;
  /** The error a refused entry rejects with (the queue stopped). */
  refused(): Error;
}

interface Entry<C, O> {
  command: C;
  outcome: Deferred<O>;
}

/**
 * The one queue engine: one entry runs at a time, the ones asked for
 * meanwhile wait (and merge where the rules say so), every asker gets its
 * entry's outcome, and a stop refuses whatever has not started. The master's
 * arbiter is one (every command to the running service); a swappable module,
 * a config resource and a process's config store each own one, so that in a
 * process without a master too at most one change of theirs runs and the
 * ones asked for meanwhile coalesce into one to the newest wanted state.
 */
export class Queue<C, O = unknown> {
  private readonly queue: Array<Entry<C, O>> = [];
  private running: Entry<C, O> | undefined;
  private stopped = false;
  private opened: boolean;

  constructor(
    private readonly rules: QueueRules<C, O>,
    options: { open?: boolean } = {},
  ) {
    this.opened = options.open ?? true;
  }

  /** Start carrying out entries (those asked for before wait until now). */
  open(): void {
    this.opened = true;
    this.pump();
  }

  /** The entry in flight, if any. */
  get current(): C | undefined {
    return this.running?.command;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** The entries in flight and waiting, in order. */
  entries(): C[] {
    return [...(this.running ? [this.running.command] : []), ...this.queue.map((e) => e.command)];
  }

  submit(command: C): Promise<O> {
    if (this.rules.preempts?.(command)) {
      void this.stop();
      return this.rules.handle(command);
    }
    if (this.stopped) return Promise.reject(this.rules.refused());
    if (this.rules.merge) {
      for (const entry of this.queue) {
        const merged = this.rules.merge(entry.command, command);
        if (merged !== undefined) {
          entry.command = merged;
          return entry.outcome.promise;
        }
      }
    }
    const entry: Entry<C, O> = { command, outcome: deferred<O>() };
    this.queue.push(entry);
    this.pump();
    return entry.outcome.promise;
  }

  /**
   * Refuse everything queued and everything asked for from now on; resolves
   * once the entry in flight (if any) has settled. What stops the entry in
   * flight itself is its owner's business (a slot's close aborts its build).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.queue.splice(0)) entry.outcome.reject(this.rules.refused());
    await this.running?.outcome.promise.catch(() => {});
  }

  private pump(): void {
    if (this.running || !this.opened) return;
    const entry = this.queue.shift();
    if (!entry) return;
    this.running = entry;
    const settled = this.rules.handle(entry.command).then(
      (value) => () => entry.outcome.resolve(value),
      (err: unknown) => () => entry.outcome.reject(err),
    );
    void settled.then((settle) => {
      // Free the queue (and start what waits) before the askers hear the outcome,
      // so an asker that asks again at once is not merged into a finished entry.
      this.running = undefined;
      this.pump();
      settle();
    });
  }
}

/**
 * A queue whose every entry is the same: bring the thing to the newest wanted
 * state. At most one run is in flight, and every run asked for meanwhile is
 * one more run, after it.
 */
export class Coalescing<O> {
  private readonly queue: Queue<true, O>;

  constructor(name: string, run: () => Promise<O>) {
    this.queue = new Queue<true, O>({
      handle: run,
      merge: (waiting) => waiting,
      refused: () => new GraftError('GRAFT_STOPPING', `${name} is closed; nothing further is started`),
    });
  }

  run(): Promise<O> {
    return this.queue.submit(true);
  }

  /** Refuse the run waiting and every later one; resolves once the run in flight has settled. */
  stop(): Promise<void> {
    return this.queue.stop();
  }
}
