import { GraftError } from '../errors.js';
import type { ConfigIssue, ConfigSchema } from './schema.js';
import { validateConfig } from './schema.js';
import { changedPaths, contentHash, deepFreeze, type Snapshot } from './snapshot.js';
import { Subscriptions, type ConfigListener, type ListenerFailure } from './subscriptions.js';

/**
 * Declare your config's type once for typed `config.current` everywhere:
 *
 *   declare module 'graft' { interface Register { config: z.infer<typeof schema> } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface Register {}
export type Config = Register extends { config: infer C } ? C : Record<string, unknown>;

export interface Prepared<T> {
  version: number;
  hash: string;
  source: string;
  value: T;
}

/**
 * The live snapshot in this process and the subscriptions on it. In a graft
 * worker the master feeds it (prepare, then commit, over IPC); in a process
 * without a master it loads and watches by itself (see standalone.ts).
 */
export class ConfigStore<T = Config> {
  /**
   * The live snapshot's data: frozen, typed where declared. A plain data
   * property once loaded, so a hot-path read is a plain property read.
   */
  declare current: T;
  private snapshot: Snapshot<T> | undefined;
  private schema: ConfigSchema<T> | undefined;
  /** By version: a catch-up apply and the next change's prepare may overlap. */
  private readonly prepared = new Map<number, Prepared<T>>();
  private readonly subscriptions = new Subscriptions();
  /** Set by the standalone loader: loads sources on first read. */
  private loadOnFirstRead: (() => void) | undefined;
  listenerTimeoutMs = 5000;

  constructor() {
    // Until the first snapshot, reading current loads it (without a master) or explains why it can't.
    Object.defineProperty(this, 'current', { configurable: true, enumerable: true, get: () => this.live().data });
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
    return this.snapshot !== undefined;
  }

  get declaredSchema(): ConfigSchema<T> | undefined {
    return this.schema;
  }

  /** Subscribe to a key path or prefix (`''` for every change). Returns an unsubscribe function. */
  on(path: string, listener: ConfigListener): () => void {
    return this.subscriptions.add(path, listener);
  }

  /** defineService({ config }) declares the schema; validation uses it from then on. */
  declareSchema(schema: ConfigSchema<T>): void {
    this.schema = schema;
  }

  setLoader(load: (() => void) | undefined): void {
    this.loadOnFirstRead = load;
  }

  /** Validate a candidate without applying it. */
  async prepare(raw: unknown, meta: { version: number; source: string }): Promise<{ ok: true; value: T } | { ok: false; issues: ConfigIssue[] }> {
    const result = await validateConfig(this.schema, raw);
    if ('issues' in result) return { ok: false, issues: result.issues };
    this.prepared.set(meta.version, { version: meta.version, source: meta.source, hash: contentHash(result.value), value: result.value });
    return { ok: true, value: result.value };
  }

  /** Make the prepared version live and run the subscriptions it touches. */
  async commit(version: number): Promise<ListenerFailure[]> {
    const prepared = this.prepared.get(version);
    if (!prepared) {
      throw new GraftError('GRAFT_CONFIG_APPLY_FAILED', `config version ${version} was committed without being prepared here`);
    }
    for (const v of this.prepared.keys()) if (v <= version) this.prepared.delete(v);
    if (this.snapshot && this.snapshot.version > version) return []; // a newer version is already live
    return this.install(prepared);
  }

  /** Install a value as the live snapshot without validation (first snapshot before the schema is known). */
  async install(prepared: Prepared<T>): Promise<ListenerFailure[]> {
    const previous = this.snapshot;
    // prepared.value is this process's own copy (from IPC, the schema, or a fresh merge): freeze it in place.
    const data = deepFreeze(prepared.value);
    const changed = previous ? changedPaths(previous.data, data) : [];
    this.snapshot = Object.freeze({
      version: prepared.version,
      hash: prepared.hash,
      data,
      changed: Object.freeze(changed),
      source: prepared.source,
      at: new Date().toISOString(),
    });
    Object.defineProperty(this, 'current', { configurable: true, enumerable: true, writable: false, value: data });
    if (!previous || changed.length === 0) return [];
    return this.subscriptions.notify(changed, data, previous.data, this.listenerTimeoutMs);
  }

  private live(): Snapshot<T> {
    if (!this.snapshot && this.loadOnFirstRead) this.loadOnFirstRead();
    if (!this.snapshot) {
      throw new GraftError('GRAFT_CONFIG_NOT_READY', 'config is not loaded yet; read config.current inside start() or a request handler, not while modules load');
    }
    return this.snapshot;
  }
}

/**
 * The process-wide store: `import { config } from 'graft'`. Kept on globalThis
 * so an app that imports its own copy of graft shares it with the worker runtime.
 */
const kStore = Symbol.for('graft.config.store');
export const config: ConfigStore = ((globalThis as Record<symbol, unknown>)[kStore] ??= new ConfigStore()) as ConfigStore;
