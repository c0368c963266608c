import { deferred, type Deferred } from '../core/deferred.js';
import { GraftError } from '../core/errors.js';

export interface ArbiterRules<C> {
  /** Carry out one command; what it resolves with is the answer to whoever asked. */
  handle(command: C): Promise<unknown>;
  /** A later command folded into one still waiting (both askers get its outcome), or undefined to queue it. */
  merge(waiting: C, later: C): C | undefined;
  /**
   * Commands that do not wait their turn (a stop): they run at once, beside
   * the one in flight, whose own slots they close; everything still queued,
   * and everything asked for later, is refused.
   */
  preempts(command: C): boolean;
}

interface Entry<C> {
  command: C;
  outcome: Deferred<unknown>;
}

/**
 * The master's one queue and one loop (Gunicorn's arbiter is the model):
 * signal handlers and control requests only submit a command and await its
 * outcome; the loop carries out one command at a time, so no two changes to
 * the running service ever interleave.
 */
export class Arbiter<C> {
  private readonly queue: Array<Entry<C>> = [];
  private running: Entry<C> | undefined;
  private stopping: C | undefined;
  private opened = false;

  constructor(private readonly rules: ArbiterRules<C>) {}

  /** Start carrying out commands (those asked for while the master started wait until now). */
  open(): void {
    this.opened = true;
    this.loop();
  }

  /** The command in flight, if any. */
  get current(): C | undefined {
    return this.running?.command;
  }

  get waiting(): number {
    return this.queue.length;
  }

  submit(command: C): Promise<unknown> {
    if (this.rules.preempts(command)) return this.preempt(command);
    if (this.stopping !== undefined) return Promise.reject(refused());
    for (const entry of this.queue) {
      const merged = this.rules.merge(entry.command, command);
      if (merged !== undefined) {
        entry.command = merged;
        return entry.outcome.promise;
      }
    }
    const entry: Entry<C> = { command, outcome: deferred() };
    this.queue.push(entry);
    this.loop();
    return entry.outcome.promise;
  }

  private preempt(command: C): Promise<unknown> {
    this.stopping = command;
    for (const entry of this.queue.splice(0)) entry.outcome.reject(refused());
    return this.rules.handle(command);
  }

  private loop(): void {
    if (this.running || !this.opened) return;
    const entry = this.queue.shift();
    if (!entry) return;
    this.running = entry;
    void this.rules
      .handle(entry.command)
      .then(entry.outcome.resolve, entry.outcome.reject)
      .finally(() => {
        this.running = undefined;
        this.loop();
      });
  }
}

function refused(): GraftError {
  return new GraftError('GRAFT_STOPPING', 'the master is stopping; the command was not carried out');
}
