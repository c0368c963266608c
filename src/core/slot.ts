import { GraftError } from './errors.js';
import { deferred, type Deferred } from './deferred.js';
import { Generation } from './generation.js';
import type { Lease } from './lease.js';

/**
 * The generation slot: the one implementation of DESIGN.md's protocol
 * (build, verify, commit, drain, dispose) shared by every layer that replaces
 * something while the service runs.
 *
 * - One operation at a time holds the slot's lock: a replace, or an amend of
 *   the live generation. Replaces asked for while one waits merge into it, and
 *   every merged caller gets the one outcome.
 * - If build or verify fails, nothing changes: the live generation keeps
 *   serving and the replace rejects with the reason.
 * - After the new generation becomes live, the previous one starts draining
 *   and the layer's commit step runs, still inside the lock; its result and
 *   the true previous generation reach every merged caller.
 * - A retired generation drains (its leases, or the layer's own notion of
 *   in-flight work) for at most drainTimeoutMs, then is disposed.
 */

/**
 * Thrown by a build that finds nothing to change (the same content again): the
 * replace rejects with it and its version number is given back. `repeated` is
 * the error the same content was rejected with last time, for a layer that
 * reports a rejection once per distinct content.
 */
export class Unchanged extends Error {
  constructor(
    readonly current: number | undefined,
    readonly repeated?: unknown,
  ) {
    super('nothing changed');
    this.name = 'Unchanged';
  }
}

export interface BuildContext<T, R = undefined> {
  version: number;
  /** What the replace was asked for with; merged requests arrive merged. */
  request: R | undefined;
  /** Aborted when the slot is closed while this replace runs. */
  signal: AbortSignal;
  previous: T | undefined;
}

export interface SlotHooks<T, R = undefined, C = undefined> {
  build(ctx: BuildContext<T, R>): Promise<T>;
  /** Must pass before the new generation takes work. */
  verify?(value: T, ctx: BuildContext<T, R>): Promise<void> | void;
  /** A built generation that failed verify is discarded here (default: dispose). */
  discard?(value: T, reason: unknown): Promise<void> | void;
  /**
   * Runs once per replace, inside the lock, after the new generation became
   * live and the previous one began draining: what a layer must finish before
   * the next operation may start. Its result is every merged caller's.
   */
  commit?(next: Generation<T>, previous: Generation<T> | undefined, ctx: BuildContext<T, R>): Promise<C> | C;
  /** Resolves when the retired generation's work is done (default: all leases released). Aborted at the drain timeout. */
  drain?(generation: Generation<T>, signal: AbortSignal): Promise<void>;
  dispose?(value: T, info: { version: number; timedOut: boolean }): Promise<void> | void;
}

/** What every caller of one replace receives. */
export interface Replaced<T, C = undefined> {
  generation: Generation<T>;
  /** The generation that was live when this replace committed. */
  previous: Generation<T> | undefined;
  /** What the commit step returned. */
  result: C;
}

export type SlotEvent =
  | { type: 'build'; slot: string; version: number }
  | { type: 'commit'; slot: string; version: number; previous: number | undefined; buildMs: number }
  | { type: 'reject'; slot: string; version: number; error: unknown }
  | { type: 'drain'; slot: string; version: number; inFlight: number }
  | { type: 'dispose'; slot: string; version: number; drainMs: number; timedOut: boolean }
  | { type: 'dispose-error'; slot: string; version: number; error: unknown };

export interface SlotOptions<R = undefined> {
  name: string;
  /** Folds the request of a later replace into the one already waiting (default: the later wins). */
  merge?: (waiting: R, later: R) => R;
  /** How long a retired generation may drain before it is disposed anyway (unset: the drain hook bounds itself). */
  drainTimeoutMs?: number;
  /** Version number of the first generation built (default 1). */
  firstVersion?: number;
  onEvent?: (event: SlotEvent) => void;
}

type Operation<T, R, C> =
  | { kind: 'replace'; request: R | undefined; outcome: Deferred<Replaced<T, C>> }
  | { kind: 'amend'; change: (live: Generation<T>) => unknown; outcome: Deferred<unknown> };

export class Slot<T, R = undefined, C = undefined> {
  private live: Generation<T> | undefined;
  private readonly retiring = new Set<Generation<T>>();
  private readonly retirements = new Set<Promise<void>>();
  private readonly queue: Array<Operation<T, R, C>> = [];
  private running: Operation<T, R, C> | undefined;
  private nextVersion: number;
  private readonly abort = new AbortController();
  private closed = false;

  constructor(
    private readonly hooks: SlotHooks<T, R, C>,
    private readonly options: SlotOptions<R>,
  ) {
    this.nextVersion = options.firstVersion ?? 1;
  }

  get name(): string {
    return this.options.name;
  }

  /** The live generation, or undefined before the first commit. */
  get current(): Generation<T> | undefined {
    return this.live;
  }

  /** Generations committed over but not yet disposed. */
  get draining(): ReadonlySet<Generation<T>> {
    return this.retiring;
  }

  /** True while a replace is building, verifying or committing. */
  get replacing(): boolean {
    return this.running?.kind === 'replace';
  }

  /** The version number the next replace builds. */
  get upcoming(): number {
    return this.nextVersion;
  }

  /**
   * Make value the live generation without building it: a value that had to
   * be read synchronously, one inherited from a predecessor process, or one
   * built and verified elsewhere (a worker thread takes the snapshot its main
   * thread validated). A generation already live is retired as by a replace.
   */
  adopt(value: T, version = this.nextVersion): Generation<T> {
    if (this.running || this.queue.length > 0 || this.closed) throw new GraftError('GRAFT_INTERNAL', `${this.name}: only an idle slot can adopt a generation`);
    const previous = this.live;
    const generation = new Generation(version, value);
    this.live = generation;
    this.nextVersion = version + 1;
    this.emit({ type: 'commit', slot: this.name, version, previous: previous?.version, buildMs: 0 });
    if (previous) this.retire(previous);
    return generation;
  }

  /**
   * Build the next generation and commit it. Resolves once the commit step has
   * run; rejects with the build or verify error (nothing changed).
   */
  replace(request?: R): Promise<Replaced<T, C>> {
    if (this.closed) return Promise.reject(this.closedError());
    const waiting = this.queue.find((op): op is Extract<Operation<T, R, C>, { kind: 'replace' }> => op.kind === 'replace');
    if (waiting) {
      if (request !== undefined) {
        waiting.request = waiting.request !== undefined && this.options.merge ? this.options.merge(waiting.request, request) : request;
      }
      return waiting.outcome.promise;
    }
    const op: Operation<T, R, C> = { kind: 'replace', request, outcome: deferred() };
    this.queue.push(op);
    this.pump();
    return op.outcome.promise;
  }

  /**
   * Change the live generation in place, inside the lock: after the replace or
   * amend in flight, before any asked for later. Rejects if nothing is live.
   */
  amend<X>(change: (live: Generation<T>) => X | Promise<X>): Promise<X> {
    if (this.closed) return Promise.reject(this.closedError());
    const outcome = deferred<unknown>();
    this.queue.push({ kind: 'amend', change, outcome });
    this.pump();
    return outcome.promise as Promise<X>;
  }

  /** Lease the live generation; release it when the work is done. */
  lease(): Lease<T> {
    if (!this.live) throw new GraftError('GRAFT_NOT_LIVE', `${this.name} has no live generation yet; wait for its first one to load`);
    return this.live.acquire();
  }

  /** Run fn on the live generation, holding a lease for as long as it runs. */
  async use<X>(fn: (value: T, version: number) => X | Promise<X>): Promise<X> {
    const lease = this.lease();
    try {
      return await fn(lease.value, lease.version);
    } finally {
      lease.release();
    }
  }

  /** Resolves when every retired generation has been disposed. */
  async settled(): Promise<void> {
    while (this.retirements.size > 0) await Promise.all([...this.retirements]);
  }

  /**
   * Stop: abort the operation in flight, reject the queued ones, retire the
   * live generation (drain, then dispose) and wait for every retirement.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.abort.abort(new GraftError('GRAFT_STOPPING', `${this.name} closed while a replace was in flight`));
      for (const op of this.queue.splice(0)) op.outcome.reject(this.closedError());
      const running = this.running;
      if (running) await running.outcome.promise.catch(() => {});
      const live = this.live;
      this.live = undefined;
      if (live) this.retire(live);
    }
    await this.settled();
  }

  private closedError(): GraftError {
    return new GraftError('GRAFT_STOPPING', `${this.name} is closed; nothing further is started`);
  }

  private pump(): void {
    if (this.running || this.closed) return;
    const op = this.queue.shift();
    if (!op) return;
    this.running = op;
    const done = op.kind === 'replace' ? this.runReplace(op) : this.runAmend(op);
    void done.then((settle) => {
      // Free the lock (and start what waits) before the callers hear the outcome,
      // so a caller that asks again at once is not merged into a finished operation.
      this.running = undefined;
      this.pump();
      settle();
    });
  }

  /** Each run resolves with how to settle its callers, once the lock is free. */
  private async runAmend(op: Extract<Operation<T, R, C>, { kind: 'amend' }>): Promise<() => void> {
    try {
      if (!this.live) throw new GraftError('GRAFT_NOT_LIVE', `${this.name} has no live generation to change`);
      const value = await op.change(this.live);
      return () => op.outcome.resolve(value);
    } catch (err) {
      return () => op.outcome.reject(err);
    }
  }

  private async runReplace(op: Extract<Operation<T, R, C>, { kind: 'replace' }>): Promise<() => void> {
    const version = this.nextVersion++;
    const previous = this.live;
    const ctx: BuildContext<T, R> = { version, request: op.request, signal: this.abort.signal, previous: previous?.value };
    const started = Date.now();
    this.emit({ type: 'build', slot: this.name, version });
    let value: T;
    try {
      value = await this.hooks.build(ctx);
      try {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        await this.hooks.verify?.(value, ctx);
        if (ctx.signal.aborted) throw ctx.signal.reason;
      } catch (err) {
        await this.safely(version, () => (this.hooks.discard ?? this.disposeHook)(value, err));
        throw err;
      }
    } catch (err) {
      if (err instanceof Unchanged) {
        if (this.nextVersion === version + 1) this.nextVersion = version;
      } else {
        this.emit({ type: 'reject', slot: this.name, version, error: err });
      }
      return () => op.outcome.reject(err);
    }
    const generation = new Generation(version, value);
    this.live = generation;
    this.emit({ type: 'commit', slot: this.name, version, previous: previous?.version, buildMs: Date.now() - started });
    if (previous) this.retire(previous);
    try {
      const result = (await this.hooks.commit?.(generation, previous, ctx)) as C;
      return () => op.outcome.resolve({ generation, previous, result });
    } catch (err) {
      return () => op.outcome.reject(err);
    }
  }

  private readonly disposeHook = (value: T, _reason: unknown): Promise<void> | void =>
    this.hooks.dispose?.(value, { version: -1, timedOut: false });

  private retire(generation: Generation<T>): void {
    generation.state = 'draining';
    generation.retiredAt = Date.now();
    this.retiring.add(generation);
    this.emit({ type: 'drain', slot: this.name, version: generation.version, inFlight: generation.inFlight });
    const retirement = this.drainAndDispose(generation).finally(() => {
      this.retiring.delete(generation);
      this.retirements.delete(retirement);
    });
    this.retirements.add(retirement);
  }

  private async drainAndDispose(generation: Generation<T>): Promise<void> {
    const deadline = new AbortController();
    let timedOut = false;
    const limit = this.options.drainTimeoutMs;
    const timer =
      limit === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            deadline.abort(new GraftError('GRAFT_DRAIN_TIMEOUT', `generation ${generation.version} of ${this.name} did not drain within ${limit} ms`));
          }, limit);
    try {
      const drained = this.hooks.drain ? this.hooks.drain(generation, deadline.signal) : generation.idle();
      await unlessAborted(deadline.signal, drained).catch(() => {});
    } finally {
      clearTimeout(timer);
    }
    await this.safely(generation.version, () => this.hooks.dispose?.(generation.value, { version: generation.version, timedOut }));
    generation.state = 'disposed';
    this.emit({ type: 'dispose', slot: this.name, version: generation.version, drainMs: Date.now() - (generation.retiredAt ?? Date.now()), timedOut });
  }

  private async safely(version: number, fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (error) {
      this.emit({ type: 'dispose-error', slot: this.name, version, error });
    }
  }

  private emit(event: SlotEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // A logging hook must never break a replace.
    }
  }
}

/**
 * `work`'s outcome, unless the signal aborts first (then the signal's reason).
 * The abort listener is removed as soon as either happens, so a long-lived
 * signal does not collect one listener per call.
 */
export function unlessAborted<V>(signal: AbortSignal, work: Promise<V>): Promise<V> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
