import { isMainThread } from 'node:worker_threads';
import { deferred } from '../core/deferred.js';
import { GraftError } from '../core/errors.js';
import { Queue } from '../core/queue.js';
import { Slot } from '../core/slot.js';
import { loopHooks } from './threads/loop-hooks.js';
import type { ConfigSchema } from './schema.js';
import { issuesError, validateConfig } from './schema.js';
import { changedPaths, contentHash, deepFreeze, type Snapshot } from './snapshot.js';
import { Subscriptions, type ConfigListener, type ListenerFailure } from './subscriptions.js';
import { ThreadFollower } from './threads/follower.js';
import { ThreadHub, type Staged } from './threads/hub.js';

/**
 * Declare your config's type once for typed `config.current` everywhere:
 *
 *   declare module 'graftjs' { interface Register { config: z.infer<typeof schema> } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface Register {}
export type Config = Register extends { config: infer C } ? C : Record<string, unknown>;

/** A candidate config for this process. */
export interface Proposal {
  /** The version it will carry (the master's number); without one, the one after the live version. */
  version?: number;
  source: string;
  /** The merged sources, read when the change runs (of proposals merged while one waits, the newest is read). */
  read(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /**
   * Two-phase: once the data is valid, the change waits for this decision,
   * true to go live, false to drop it. Without one it goes live once valid.
   */
  decision?: Promise<boolean>;
  /** Told when the data passed the schema, before the decision is awaited. */
  onValid?(): void;
  /** How long the change may wait for the process's worker threads to run their subscribers (default: the store's threadTimeoutMs). */
  threadTimeoutMs?: number;
}

/** A proposal's data, read when its turn came. */
interface Read {
  proposal: Proposal;
  raw: Record<string, unknown>;
  hash: string;
}

/** A snapshot with the schema that validated it: the same content under a new schema is a change. */
interface Validated<T> {
  snapshot: Snapshot<T>;
  schema: ConfigSchema<T> | undefined;
  /** The snapshot as worker threads will read it (main thread of the process-wide store only). */
  staged?: Staged | undefined;
  threadTimeoutMs?: number | undefined;
}

/** How long a prepared version waits for the master's decision before it is dropped. */
const DECISION_TIMEOUT_MS = 30_000;

/**
 * The live snapshot in this process and the subscriptions on it. Snapshots are
 * generations of a slot: a change is validated (build), waits for its decision
 * when the master runs a two-phase change (verify), and goes live with its
 * subscriptions notified (commit), one change at a time (the store's queue:
 * a proposal asked for while one waits takes its place). In a graft worker the
 * master feeds it over IPC; in a process without a master it loads and watches
 * by itself (see standalone.ts). The process-wide store shares every snapshot
 * with the process's worker threads, whose stores follow it (see threads/).
 */
export class ConfigStore<T = Config> {
  /**
   * The live snapshot's data: frozen, typed where declared. A plain data
   * property once loaded, so a hot-path read is a plain property read.
   */
  declare current: T;
  private schema: ConfigSchema<T> | undefined;
  private readonly slot: Slot<Validated<T>, Read, ListenerFailure[]>;
  private readonly changes: Queue<Proposal, ListenerFailure[]>;
  private readonly subscriptions = new Subscriptions();
  /** Set by the standalone loader: loads sources on first read. */
  private loadOnFirstRead: (() => void) | undefined;
  /** Main thread: shares each snapshot with the process's worker threads. */
  private hub: ThreadHub | undefined;
  /** Worker thread: takes each snapshot from the process's main thread. */
  private follower: ThreadFollower | undefined;
  private readonly firstSnapshot = deferred<void>();
  listenerTimeoutMs = 5000;
  /** How long a change waits for worker threads to run their subscribers before it reports them busy. */
  threadTimeoutMs = 15_000;

  constructor() {
    // Until the first snapshot, reading current loads it (without a master) or explains why it can't.
    Object.defineProperty(this, 'current', { configurable: true, enumerable: true, get: () => this.live().data });
    this.slot = new Slot<Validated<T>, Read, ListenerFailure[]>(
      {
        build: ({ request, previous }) => this.validate(request!, previous),
        verify: (_value, { request }) => this.awaitDecision(request!.proposal),
        commit: (next, previous) => this.install(next.value, previous?.value),
      },
      { name: 'config' },
    );
    this.changes = new Queue<Proposal, ListenerFailure[]>({
      handle: (proposal) => this.change(proposal),
      merge: (_waiting, later) => later,
      refused: () => new GraftError('GRAFT_STOPPING', 'the config store takes no more changes'),
    });
  }

  get version(): number {
    return this.live().version;
  }

  get hash(): string {
    return this.live().hash;
  }

  /** The whole snapshot: version, hash, data, changed key paths, source, time. */
  get snapshotInfo(): Snapshot<T> {
    return this.live();
  }

  get loaded(): boolean {
    this.follower?.catchUp();
    return this.slot.current !== undefined;
  }

  /**
   * Resolves once config.current can be read: at once where it can (a graft
   * worker, a thread of one), after loading without a master, and in a worker
   * thread once its main thread has shared the config.
   */
  ready(): Promise<void> {
    if (this.follower) return this.follower.ready();
    if (this.loaded) return Promise.resolve();
    if (this.loadOnFirstRead) {
      try {
        this.live();
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve();
    }
    return this.firstSnapshot.promise;
  }

  get declaredSchema(): ConfigSchema<T> | undefined {
    return this.schema;
  }

  /** Subscribe to a key path or prefix (`''` for every change). Returns an unsubscribe function. */
  on(path: string, listener: ConfigListener): () => void {
    // A worker thread says it has subscribers before it has one (see ThreadHub.settle).
    this.follower?.subscriptions(this.subscriptions.size + 1);
    let off: () => void;
    try {
      off = this.subscriptions.add(path, listener);
    } catch (err) {
      this.follower?.subscriptions(this.subscriptions.size);
      throw err;
    }
    if (!this.follower) return off;
    return () => {
      off();
      this.follower?.subscriptions(this.subscriptions.size);
    };
  }

  /** defineService({ config }) declares the schema; validation uses it from then on. */
  declareSchema(schema: ConfigSchema<T>): void {
    this.schema = schema;
  }

  setLoader(load: (() => void) | undefined): void {
    this.loadOnFirstRead = load;
  }

  /**
   * Make this the store of every thread of the process: in the main thread it
   * shares its snapshots; in a worker thread it follows the main thread's
   * (and reads check for a newer one, so config.current is an accessor there).
   */
  shareAcrossThreads(): this {
    if (isMainThread) {
      this.hub ??= new ThreadHub({ load: () => (this.loaded || !this.loadOnFirstRead ? undefined : void this.live()) });
    } else {
      const follower = (this.follower ??= new ThreadFollower({
        take: (snapshot) => this.takeFromMainThread(snapshot as Snapshot<T>),
        notify: (changed, next, previous) => this.subscriptions.notify(changed, next, previous, this.listenerTimeoutMs),
        stopLoops: () => loopHooks.stopLoops(),
      }));
      Object.defineProperty(this, 'current', { configurable: true, enumerable: true, get: () => follower.current() });
    }
    return this;
  }

  /** A draining worker: the job loops running in its worker threads stop too (their running iteration finishes). */
  stopThreadLoops(): Promise<void> {
    return this.hub?.stopLoops() ?? Promise.resolve();
  }

  /**
   * Validate a proposal and make it live (at once, or on its decision).
   * Resolves with the subscriptions that failed; rejects, changing nothing,
   * when it fails the schema (the error carries the issues) or is dropped.
   */
  apply(proposal: Proposal): Promise<ListenerFailure[]> {
    return this.changes.submit(proposal);
  }

  /**
   * The first snapshot, already validated, taken synchronously (a process
   * without a master reads its files on the first read of config.current).
   */
  adopt(data: T, meta: { version: number; hash: string; source: string }): void {
    const snapshot = freezeSnapshot(meta.version, meta.hash, data, [], meta.source);
    const staged = this.hub?.stage(snapshot);
    this.slot.adopt({ snapshot, schema: this.schema, staged });
    this.expose(snapshot, staged);
  }

  /** One proposal's turn: read it; the same data under the same schema and version is valid and changes nothing. */
  private async change(proposal: Proposal): Promise<ListenerFailure[]> {
    const raw = await proposal.read();
    const hash = contentHash(raw);
    const previous = this.slot.current?.value;
    if (previous && previous.snapshot.hash === hash && previous.schema === this.schema && (proposal.version ?? previous.snapshot.version) === previous.snapshot.version) {
      proposal.onValid?.();
      return [];
    }
    return (await this.slot.replace({ proposal, raw, hash })).result;
  }

  private async validate({ proposal, raw, hash }: Read, previous: Validated<T> | undefined): Promise<Validated<T>> {
    const schema = this.schema;
    const result = await validateConfig(schema, raw);
    if ('issues' in result) throw issuesError(result.issues, proposal.source);
    const version = proposal.version ?? (previous ? previous.snapshot.version + 1 : 1);
    const changed = previous ? changedPaths(previous.snapshot.data, result.value) : [];
    const snapshot = freezeSnapshot(version, hash, result.value, changed, proposal.source);
    // Part of validating: a snapshot the threads could not be handed is refused before anything goes live.
    return { snapshot, schema, staged: this.hub?.stage(snapshot), threadTimeoutMs: proposal.threadTimeoutMs };
  }

  private async awaitDecision(proposal: Proposal): Promise<void> {
    proposal.onValid?.();
    if (!proposal.decision) return;
    let timer: NodeJS.Timeout | undefined;
    const go = await Promise.race([
      proposal.decision,
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), DECISION_TIMEOUT_MS);
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    if (!go) throw new GraftError('GRAFT_CONFIG_ABORTED', `config version ${proposal.version ?? '?'} from ${proposal.source} was dropped before it went live: the change did not reach every worker`);
  }

  /** Commit: the main thread and every worker thread switch at once; resolves when the subscriptions of all have run. */
  private async install(next: Validated<T>, previous: Validated<T> | undefined): Promise<ListenerFailure[]> {
    const seq = this.expose(next.snapshot, next.staged);
    const changed = next.snapshot.changed;
    const threads = seq === undefined ? [] : this.hub!.settle(seq, next.snapshot.version, next.threadTimeoutMs ?? this.threadTimeoutMs);
    const main = !previous || changed.length === 0 ? [] : this.subscriptions.notify(changed, next.snapshot.data, previous.snapshot.data, this.listenerTimeoutMs);
    const [own, theirs] = await Promise.all([main, threads]);
    return [...own, ...theirs];
  }

  /** The snapshot goes live in this thread (and, from the main thread, on the board every thread reads). Returns the board's write number. */
  private expose(snapshot: Snapshot<T>, staged?: Staged): number | undefined {
    Object.defineProperty(this, 'current', { configurable: true, enumerable: true, writable: false, value: snapshot.data });
    this.firstSnapshot.resolve();
    return staged && this.hub?.publish(staged);
  }

  /** A worker thread takes the snapshot its main thread made live (validated there): current stays an accessor that checks for the next one. */
  private takeFromMainThread(snapshot: Snapshot<T>): void {
    deepFreeze(snapshot);
    this.slot.adopt({ snapshot, schema: this.schema }, snapshot.version);
    this.firstSnapshot.resolve();
  }

  private live(): Snapshot<T> {
    if (this.follower) this.follower.ensure();
    else if (!this.slot.current && this.loadOnFirstRead) this.loadOnFirstRead();
    const live = this.slot.current;
    if (!live) {
      throw new GraftError('GRAFT_CONFIG_NOT_READY', 'config is not loaded yet; read config.current inside start() or a request handler, not while modules load');
    }
    return live.value.snapshot;
  }
}

function freezeSnapshot<T>(version: number, hash: string, data: T, changed: string[], source: string): Snapshot<T> {
  // data is this process's own copy (from IPC, the schema, or a fresh merge): freeze it in place.
  return Object.freeze({ version, hash, data: deepFreeze(data), changed: Object.freeze(changed), source, at: new Date().toISOString() });
}

/**
 * The process-wide store: `import { config } from 'graftjs'`. Kept on globalThis
 * so an app that imports its own copy of graft shares it with the worker runtime.
 */
const kStore = Symbol.for('graft.config.store');
export const config: ConfigStore = ((globalThis as Record<symbol, unknown>)[kStore] ??= new ConfigStore().shareAcrossThreads()) as ConfigStore;
