import { GraftError } from '../errors.js';
import { Generation } from './generation.js';
import type { Lease } from './lease.js';

/**
 * The generation slot: the one implementation of DESIGN.md's protocol
 * (build, verify, commit, drain, dispose) shared by every layer that replaces
 * something while the service runs.
 *
 * - At most one swap is in flight. Swaps asked for while one runs coalesce
 *   into a single further swap, which every one of those callers awaits.
 * - If build or verify fails, nothing changes: the live generation keeps
 *   serving and the swap rejects with the reason.
 * - After commit, the previous generation drains (its leases, or the layer's
 *   own notion of in-flight work) bounded by drainTimeoutMs, then is disposed.
 */
/**
 * Thrown by a build that finds nothing to change (the same content again):
 * the swap rejects with it, and its version number is given back.
 */
export class Unchanged extends Error {
  constructor(readonly current: number | undefined) {
    super('nothing changed');
    this.name = 'Unchanged';
  }
}

export interface BuildContext<T, R = undefined> {
  version: number;
  /** What the swap was asked for with; coalesced requests arrive merged. */
  request: R | undefined;
  /** Aborted when the slot is closed while this build runs. */
  signal: AbortSignal;
  previous: T | undefined;
}

export interface SlotHooks<T, R = undefined> {
  build(ctx: BuildContext<T, R>): Promise<T>;
  /** Must pass before the new generation takes work. */
  verify?(value: T, ctx: BuildContext<T, R>): Promise<void> | void;
  /** A built generation that failed verify is discarded here (default: dispose). */
  discard?(value: T, reason: unknown): Promise<void> | void;
  /** Resolves when the retired generation's work is done (default: all leases released). */
  drain?(generation: Generation<T>, signal: AbortSignal): Promise<void>;
  dispose?(value: T, info: { version: number; timedOut: boolean }): Promise<void> | void;
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
  /** Folds the request of a swap asked for while one runs into the one already waiting (default: the later wins). */
  merge?: (waiting: R, later: R) => R;
  drainTimeoutMs: number;
  /** Version number of the first generation built (default 1). */
  firstVersion?: number;
  onEvent?: (event: SlotEvent) => void;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A coalesced caller may not await; an unobserved rejection must not crash the process.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export class Slot<T, R = undefined> {
  private live: Generation<T> | undefined;
  private readonly retiring = new Set<Generation<T>>();
  private readonly retirements = new Set<Promise<void>>();
  private nextVersion: number;
  private running: Deferred<Generation<T>> | undefined;
  private pending: Deferred<Generation<T>> | undefined;
  private pendingRequest: R | undefined;
  private abort = new AbortController();
  private closed = false;

  constructor(
    private readonly hooks: SlotHooks<T, R>,
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

  get swapping(): boolean {
    return this.running !== undefined;
  }

  /**
   * Build the next generation and commit it. Resolves with the committed
   * generation, rejects with the build or verify error (nothing changed).
   */
  swap(request?: R): Promise<Generation<T>> {
    if (this.closed) return Promise.reject(new GraftError('GRAFT_STOPPING', `slot ${this.name} is closed; no further swap is started`));
    if (!this.running) {
      this.running = deferred();
      void this.run(this.running, request);
      return this.running.promise;
    }
    if (request !== undefined) {
      const waiting = this.pendingRequest;
      this.pendingRequest = waiting !== undefined && this.options.merge ? this.options.merge(waiting, request) : request;
    }
    this.pending ??= deferred();
    return this.pending.promise;
  }

  /** Lease the live generation; release it when the work is done. */
  lease(): Lease<T> {
    if (!this.live) throw new GraftError('GRAFT_SWAP_ABORTED', `slot ${this.name} has no live generation yet`);
    return this.live.acquire();
  }

  /** Run fn on the live generation, holding a lease for as long as it runs. */
  async use<R>(fn: (value: T, version: number) => R | Promise<R>): Promise<R> {
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
   * Stop: abort a build in flight, reject coalesced swaps, retire the live
   * generation (drain, then dispose) and wait for every retirement.
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.abort.abort(new GraftError('GRAFT_STOPPING', `slot ${this.name} closed while a swap was in flight`));
      this.pending?.reject(new GraftError('GRAFT_STOPPING', `slot ${this.name} closed before the coalesced swap ran`));
      this.pending = undefined;
      if (this.running) await this.running.promise.catch(() => {});
      const live = this.live;
      this.live = undefined;
      if (live) this.retire(live);
    }
    await this.settled();
  }

  private async run(outcome: Deferred<Generation<T>>, request: R | undefined): Promise<void> {
    const version = this.nextVersion++;
    const previous = this.live;
    const ctx: BuildContext<T, R> = { version, request, signal: this.abort.signal, previous: previous?.value };
    const started = Date.now();
    this.emit({ type: 'build', slot: this.name, version });
    try {
      const value = await this.hooks.build(ctx);
      try {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        await this.hooks.verify?.(value, ctx);
        if (ctx.signal.aborted) throw ctx.signal.reason;
      } catch (err) {
        await this.safely(version, () => (this.hooks.discard ?? this.disposeHook)(value, err));
        throw err;
      }
      const generation = new Generation(version, value);
      this.live = generation;
      this.emit({ type: 'commit', slot: this.name, version, previous: previous?.version, buildMs: Date.now() - started });
      if (previous) this.retire(previous);
      outcome.resolve(generation);
    } catch (err) {
      if (err instanceof Unchanged) {
        if (this.nextVersion === version + 1) this.nextVersion = version;
      } else {
        this.emit({ type: 'reject', slot: this.name, version, error: err });
      }
      outcome.reject(err);
    } finally {
      this.running = undefined;
      const next = this.pending;
      const nextRequest = this.pendingRequest;
      this.pending = undefined;
      this.pendingRequest = undefined;
      if (next && !this.closed) {
        this.running = next;
        void this.run(next, nextRequest);
      }
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
    const timeout = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      timeout.abort(new GraftError('GRAFT_SWAP_ABORTED', `generation ${generation.version} of ${this.name} did not drain within ${this.options.drainTimeoutMs} ms`));
    }, this.options.drainTimeoutMs);
    try {
      const drained = this.hooks.drain ? this.hooks.drain(generation, timeout.signal) : generation.idle();
      await Promise.race([
        drained.catch(() => {}),
        new Promise<void>((resolve) => timeout.signal.addEventListener('abort', () => resolve(), { once: true })),
      ]);
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
      // A logging hook must never break a swap.
    }
  }
}
