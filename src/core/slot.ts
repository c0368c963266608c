import { GraftError } from './errors.js';
import { Generation } from './generation.js';
import type { Lease } from './lease.js';

/**
 * The generation slot: the one implementation of DESIGN.md's protocol
 * (build, verify, commit, drain, dispose) shared by every layer that replaces
 * something while the service runs.
 *
 * - One operation at a time: a replace, or an amend of the live generation.
 *   The slot does not queue: its owner's queue (the master's arbiter, or the
 *   coalescing queue of a swappable module, a resource, a config store; see
 *   queue.ts) decides what runs next and what merges. A second operation
 *   asked for while one runs is a mistake of the owner and is refused.
 * - If build or verify fails, nothing changes: the live generation keeps
 *   serving and the replace rejects with the reason.
 * - After the new generation becomes live, the previous one starts draining
 *   and the layer's commit step runs; the replace resolves with its result.
 * - A retired generation drains (its leases, or the layer's own notion of
 *   in-flight work), for at most drainTimeoutMs when one is set, then is
 *   disposed.
 */

export interface BuildContext<T, R = undefined> {
  version: number;
  /** What the replace was asked for with. */
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
  discard?(value: T, info: { version: number; reason: unknown }): Promise<void> | void;
  /**
   * Runs once per replace, after the new generation became live and the
   * previous one began draining: what a layer must finish before its next
   * operation may start. Its result is the replace's.
   */
  commit?(next: Generation<T>, previous: Generation<T> | undefined, ctx: BuildContext<T, R>): Promise<C> | C;
  /** Resolves when the retired generation's work is done (default: all leases released). Aborted at the drain timeout. */
  drain?(generation: Generation<T>, signal: AbortSignal): Promise<void>;
  dispose?(value: T, info: { version: number; timedOut: boolean }): Promise<void> | void;
}

/** What a replace resolves with. */
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

export interface SlotOptions {
  name: string;
  /** How long a retired generation may drain before it is disposed anyway (unset: the drain hook, or the leases, bound it). */
  drainTimeoutMs?: number;
  /** Version number of the first generation built (default 1). */
  firstVersion?: number;
  onEvent?: (event: SlotEvent) => void;
}

export class Slot<T, R = undefined, C = undefined> {
  private live: Generation<T> | undefined;
  private readonly retiring = new Set<Generation<T>>();
  private readonly retirements = new Set<Promise<void>>();
  /** The operation running, if any: close() waits for it. */
  private running: { kind: 'replace' | 'amend'; done: Promise<unknown> } | undefined;
  private nextVersion: number;
  private readonly abort = new AbortController();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly hooks: SlotHooks<T, R, C>,
    private readonly options: SlotOptions,
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
    if (this.running || this.closed) throw new GraftError('GRAFT_INTERNAL', `${this.name}: only an idle slot can adopt a generation`);
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
    return this.run('replace', () => this.runReplace(request));
  }

  /** Change the live generation in place, as one operation. Rejects if nothing is live. */
  amend<X>(change: (live: Generation<T>) => X | Promise<X>): Promise<X> {
    return this.run('amend', async () => {
      if (!this.live) throw new GraftError('GRAFT_NOT_LIVE', `${this.name} has no live generation to change`);
      return change(this.live);
    });
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
   * Stop: abort the operation in flight and wait for it, retire the live
   * generation (drain, then dispose) and wait for every retirement.
   */
  close(): Promise<void> {
    // A second call waits for the first: for the live generation's retirement too, which starts after the running operation.
    this.closing ??= (async () => {
      this.closed = true;
      this.abort.abort(new GraftError('GRAFT_STOPPING', `${this.name} closed while a replace was in flight`));
      await this.running?.done.catch(() => {});
      const live = this.live;
      this.live = undefined;
      if (live) this.retire(live);
      await this.settled();
    })();
    return this.closing;
  }

  private run<X>(kind: 'replace' | 'amend', operation: () => Promise<X>): Promise<X> {
    if (this.closed) return Promise.reject(new GraftError('GRAFT_STOPPING', `${this.name} is closed; nothing further is started`));
    if (this.running) {
      return Promise.reject(new GraftError('GRAFT_INTERNAL', `${this.name}: a ${kind} was asked for while a ${this.running.kind} runs; the slot's owner runs one operation at a time`));
    }
    const running: { kind: typeof kind; done: Promise<unknown> } = { kind, done: Promise.resolve() };
    this.running = running; // before the operation starts: its own hooks see the slot busy
    const done = operation();
    running.done = done;
    const free = () => {
      if (this.running === running) this.running = undefined;
    };
    done.then(free, free);
    return done;
  }

  private async runReplace(request: R | undefined): Promise<Replaced<T, C>> {
    const version = this.nextVersion++;
    const previous = this.live;
    const ctx: BuildContext<T, R> = { version, request, signal: this.abort.signal, previous: previous?.value };
    const started = Date.now();
    this.emit({ type: 'build', slot: this.name, version });
    let value: T;
    try {
      value = await this.hooks.build(ctx);
      try {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        await this.hooks.verify?.(value, ctx);
        if (ctx.signal.aborted) throw ctx.signal.reason;
      } catch (reason) {
        await this.safely(version, () => (this.hooks.discard ? this.hooks.discard(value, { version, reason }) : this.hooks.dispose?.(value, { version, timedOut: false })));
        throw reason;
      }
    } catch (err) {
      this.emit({ type: 'reject', slot: this.name, version, error: err });
      throw err;
    }
    const generation = new Generation(version, value);
    this.live = generation;
    this.emit({ type: 'commit', slot: this.name, version, previous: previous?.version, buildMs: Date.now() - started });
    if (previous) this.retire(previous);
    const result = (await this.hooks.commit?.(generation, previous, ctx)) as C;
    return { generation, previous, result };
  }

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
