import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from '../core/queue.js';
import { Slot } from '../core/slot.js';
import { slotEventLogger } from '../core/slot-log.js';
import type { Lease } from '../core/lease.js';
import { GraftError, errorMessage } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { Bundler } from './bundle.js';
import { evaluate, type Evaluated } from './evaluate.js';
import { watchRetired, type LeakReport } from './leak-watch.js';

/** The optional exports a swappable module may have. */
export interface SwappableExports {
  /** Runs after this generation's last lease is released. */
  dispose?: () => unknown;
  /** Receives the previous generation's `state` export; a throw rejects the swap (Erlang's code_change). */
  migrate?: (previousState: unknown) => unknown;
  /** A self-check that must pass (not throw, not return false) before this generation takes work. */
  verify?: () => unknown;
  /** Carried to the next generation's migrate(). */
  state?: unknown;
  /** `false` declares the module not swappable: changes to it need a worker reload. */
  swappable?: boolean;
}

export interface SwappableOptions<T> {
  /** Resolve the path against this directory, file or file: URL (default: the working directory). */
  base?: string;
  /** What `current` and `use()` give for a generation's exports (default: the exports). */
  adapt?: (exports: Record<string, unknown>) => T | Promise<T>;
  /** How long a retired generation may wait for its last lease (default 30 s). */
  drainTimeoutMs?: number;
  /** After dispose, how long a generation may stay reachable before it is reported as a leak (default 5 s). */
  leakGraceMs?: number;
  onLeak?: (report: LeakReport) => void;
}

interface ModuleGeneration<T> {
  exports: Record<string, unknown> & SwappableExports;
  value: T;
  inputs: string[];
  evaluated: Evaluated;
}

/** One load of the module: with a decision, its caller's two-phase swap. */
interface Load {
  decision?: SwapDecision;
}

/** A swap decided by its caller once the new generation is ready: the master's two-phase swap across workers. */
export interface SwapDecision {
  /** Told once the new generation is built and verified; it waits for the decision from then on. */
  onPrepared(generation: number): void;
  /** true: it goes live; false: it is discarded and the live generation keeps serving. */
  decision: Promise<boolean>;
}

export interface SwapResult {
  module: string;
  generation: number;
  previous: number | undefined;
}

const kRegistry = Symbol.for('graft.swappables');
const registry = ((globalThis as Record<symbol, unknown>)[kRegistry] ??= new Map<string, Swappable<unknown>>()) as Map<string, Swappable<unknown>>;

/** Every swappable module loaded in this process, by absolute path. */
export function swappables(): Swappable<unknown>[] {
  return [...registry.values()];
}

function resolvePath(path: string, base: string | undefined): string {
  if (isAbsolute(path)) return path;
  if (!base) return resolve(path);
  const dir = base.startsWith('file:') ? dirname(fileURLToPath(base)) : /\.[cm]?[jt]sx?$/.test(base) ? dirname(base) : base;
  return resolve(dir, path);
}

/**
 * A module held as generations: new calls go to the newest one, calls in
 * flight finish on theirs, and a retired generation is disposed after its last
 * lease and must then be collectable.
 */
export class Swappable<T = Record<string, unknown>> {
  readonly path: string;
  readonly name: string;
  /** Resolves once the first generation serves; rejects if it fails to load. */
  readonly ready: Promise<void>;
  private readonly slot: Slot<ModuleGeneration<T>, SwapDecision>;
  /**
   * One load at a time; swaps asked for while one runs coalesce into one
   * more, from the files as they are then. A swap its caller decides (the
   * master's two-phase swap) is its own load: its decision is not another's.
   */
  private readonly loads: Queue<Load, SwapResult>;
  private readonly bundler: Bundler;
  private readonly log;

  constructor(
    path: string,
    private readonly options: SwappableOptions<T> = {},
  ) {
    this.path = resolvePath(path, options.base);
    this.name = relative(process.cwd(), this.path) || this.path;
    this.bundler = new Bundler(this.path);
    this.log = createLogger({ role: process.env.GRAFT_ENTRY ? 'worker' : 'app', module: this.name });
    this.slot = new Slot<ModuleGeneration<T>, SwapDecision>(
      {
        build: ({ version, previous }) => this.build(version, previous),
        verify: async (g, { version, request }) => {
          await this.verify(g);
          if (request) await this.decided(version, request);
        },
        discard: (g, { version }) => this.dispose(g, version),
        dispose: (g, { version }) => this.dispose(g, version),
      },
      {
        name: this.name,
        drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
        onEvent: slotEventLogger(
          this.log,
          {
            commit: 'swap: generation committed',
            reject: 'swap: generation rejected; the live generation keeps serving',
            dispose: 'swap: generation disposed',
            disposeError: 'swap: dispose() threw',
          },
          (e) => (e.type === 'reject' ? { live: this.slot.current?.version } : {}),
        ),
      },
    );
    this.loads = new Queue<Load, SwapResult>({
      handle: async ({ decision }) => {
        const { generation, previous } = await this.slot.replace(decision);
        return { module: this.name, generation: generation.version, previous: previous?.version };
      },
      merge: (waiting, later) => (waiting.decision || later.decision ? undefined : waiting),
      refused: () => new GraftError('GRAFT_STOPPING', `${this.name} is closed; nothing further is started`),
    });
    registry.set(this.path, this as Swappable<unknown>);
    this.ready = this.loads.submit({}).then(() => undefined);
    this.ready.catch(() => {});
  }

  /** The newest generation's exports (or adapted value). */
  get current(): T {
    const live = this.slot.current;
    if (!live) throw new GraftError('GRAFT_NOT_LIVE', `${this.name} has not loaded yet; await its ready promise or call use()`);
    return live.value.value;
  }

  get generation(): number | undefined {
    return this.slot.current?.version;
  }

  /** The project files of the live generation. */
  get inputs(): string[] {
    return this.slot.current?.value.inputs ?? [this.path];
  }

  /** Generations retired but not yet disposed (their calls are still running). */
  get draining(): number {
    return this.slot.draining.size;
  }

  /** Resolves once every retired generation has been disposed (after their last calls). */
  settled(): Promise<void> {
    return this.slot.settled();
  }

  /** Lease the newest generation for as long as fn runs. */
  async use<R>(fn: (value: T, generation: number) => R | Promise<R>): Promise<R> {
    if (!this.slot.current) await this.ready;
    return this.slot.use((g, version) => fn(g.value, version));
  }

  /** Lease the newest generation until release() (an HTTP response that ends later). */
  lease(): Lease<T> {
    const lease = this.slot.lease();
    return { version: lease.version, value: lease.value.value, release: lease.release };
  }

  /**
   * Load the module again; resolves when the new generation serves, rejects
   * (nothing changed) if it fails. With a decision, the new generation waits
   * for it once it is ready, and goes live only if the decision says so.
   */
  async swap(decision?: SwapDecision): Promise<SwapResult> {
    await this.ready.catch(() => {});
    return this.loads.submit(decision ? { decision } : {});
  }

  /** Retire the live generation (dispose after its last lease) and stop. */
  async close(): Promise<void> {
    registry.delete(this.path);
    void this.loads.stop(); // swaps still waiting are refused; the slot's close aborts the one in flight
    await this.slot.close();
    await this.bundler.close();
  }

  private async build(version: number, previous: ModuleGeneration<T> | undefined): Promise<ModuleGeneration<T>> {
    const bundle = await this.bundler.build();
    const evaluated = await evaluate(bundle, this.path, version);
    const exports = evaluated.exports as ModuleGeneration<T>['exports'];
    const generation: ModuleGeneration<T> = { exports, value: undefined as T, inputs: bundle.inputs, evaluated };
    try {
      if (previous && (exports.swappable === false || previous.exports.swappable === false)) {
        throw new GraftError('GRAFT_SWAP_NOT_SWAPPABLE', `${this.name} declares itself not swappable (export const swappable = false); reload the workers instead`);
      }
      if (previous && typeof exports.migrate === 'function') {
        try {
          await exports.migrate(previous.exports.state);
        } catch (err) {
          throw new GraftError('GRAFT_SWAP_MIGRATE', `${this.name}: migrate() of generation ${version} threw: ${errorMessage(err)}; the live generation keeps serving`, { cause: err });
        }
      }
      generation.value = this.options.adapt ? await this.options.adapt(exports) : (exports as T);
    } catch (err) {
      await this.dispose(generation, version);
      throw err;
    }
    return generation;
  }

  private async verify(g: ModuleGeneration<T>): Promise<void> {
    if (typeof g.exports.verify !== 'function') return;
    let passed: unknown;
    try {
      passed = await g.exports.verify();
    } catch (err) {
      throw new GraftError('GRAFT_SWAP_VERIFY', `${this.name}: verify() threw: ${errorMessage(err)}; the live generation keeps serving`, { cause: err });
    }
    if (passed === false) throw new GraftError('GRAFT_SWAP_VERIFY', `${this.name}: verify() returned false; the live generation keeps serving`);
  }

  private async decided(version: number, { onPrepared, decision }: SwapDecision): Promise<void> {
    onPrepared(version);
    if (!(await decision)) throw new GraftError('GRAFT_SWAP_ABORTED', `${this.name}: generation ${version} was dropped before it went live: the swap did not reach every worker`);
  }

  private async dispose(g: ModuleGeneration<T>, version: number): Promise<void> {
    try {
      if (typeof g.exports.dispose === 'function') await g.exports.dispose();
    } finally {
      const { sentinel, timers, mapFrame } = g.evaluated;
      watchRetired(sentinel, {
        module: this.name,
        generation: version,
        timers,
        mapFrame,
        graceMs: this.options.leakGraceMs ?? 5000,
        report: this.options.onLeak ?? ((r) => this.reportLeak(r)),
      });
    }
  }

  private reportLeak(r: LeakReport): void {
    this.log.warn(`retired generation ${r.generation} of ${r.module} is still reachable after dispose: something it created outlives it${r.timers.length ? ` (${r.timers.join('; ')})` : ' (a timer, or a listener on a global emitter)'}; clear it in dispose()`, {
      code: 'GRAFT_SWAP_LEAK',
      generation: r.generation,
      timers: r.timers,
    });
  }
}

/** Load a module as swappable generations. `base` is usually import.meta.url. */
export function swappable<T = Record<string, unknown>>(path: string, base?: string, options: Omit<SwappableOptions<T>, 'base'> = {}): Swappable<T> {
  return new Swappable<T>(path, { ...options, ...(base ? { base } : {}) });
}
