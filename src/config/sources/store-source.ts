import { EventEmitter } from 'node:events';
import { shortHash } from '../../core/hash.js';
import { Backoff } from '../../core/backoff.js';
import { GraftError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { ReconnectLoop, type ReconnectSession } from '../../core/reconnect.js';
import { coerce, parseConfigText } from '../formats.js';
import { setPath } from '../key-path.js';
import { mergeLayers, stableStringify } from '../snapshot.js';
import type { ConfigSource, SourceStatus } from './source.js';
import type { StoreAddress } from '../../net/source-url.js';
import { StoreCache, type StoreSnapshot } from './store-cache.js';

export interface StoreSourceOptions {
  log: Logger;
  /** Where the last good snapshot is cached (the master's runtime directory, or --config-cache). */
  cacheDir: string;
  /** How long the first load tries to reach the store before it falls back to the cache. */
  startTimeoutMs: number;
  /** The longest wait between two connection attempts. */
  retryMaxMs: number;
}

/** How a store key maps into the layer: a key path, the whole document, or not ours. */
export type KeyPlace = { path: string[] } | 'document' | undefined;

/**
 * What the NATS KV, etcd, Redis and Apollo sources share: the snapshot this source
 * holds and whether it changed, the connection (one session at a time, run by
 * the reconnect loop), the first load (bounded, then the cache file), the
 * cache file itself, and the status `graft status` shows.
 *
 * A subclass runs one session per connection: it connects, does a full read
 * (`replace`) or resumes from the snapshot's revision, reports `connected`,
 * feeds changes (`update`) and returns or throws when the connection is lost.
 * It decides when a resume is not safe (a revision that went backwards, a
 * compaction, a recreated bucket) and then reads everything again: a change
 * is never skipped silently.
 */
export abstract class StoreSource implements ConfigSource {
  /** A watch event is one whole change (a put, a transaction): re-read at once. */
  readonly quietMs = 0;
  protected readonly log: Logger;
  private readonly cache: StoreCache;
  private snapshot: StoreSnapshot | undefined;
  private fromCache = false;
  private readonly listeners = new Set<(source: string) => void>();
  private readonly events = new EventEmitter();
  /** The content that went live last, and what the cache file holds (content@revision). */
  private live: string | undefined;
  private cached: string | undefined;
  private readonly link: ReconnectLoop;
  /** The reconnect loop's session running now. */
  private running: ReconnectSession | undefined;
  private closed = false;
  /** The snapshot each layer load() returned was read from, until it goes live or is dropped. */
  private readonly readFrom = new WeakMap<Record<string, unknown>, { snapshot: StoreSnapshot; fromCache: boolean }>();

  readonly name: string;

  constructor(
    /** Where the store is and what of it is this layer (`--config` URL). */
    protected readonly address: StoreAddress,
    protected readonly options: StoreSourceOptions,
  ) {
    const name = address.name;
    this.name = name;
    this.log = options.log.child({ source: name });
    this.cache = new StoreCache(options.cacheDir, name);
    this.link = new ReconnectLoop({
      what: 'config store',
      url: name,
      log: this.log,
      fields: () => ({ revision: this.snapshot?.revision }),
      backoff: new Backoff(100, options.retryMaxMs),
      classify: (err) => this.classify(err),
      onFailure: (error) => this.events.emit('failed', error),
      session: (session) => {
        this.running = session;
        return this.session(session.signal);
      },
    });
  }

  /** One connection: connect, read or resume, follow changes; returns or throws when it ends. */
  protected abstract session(signal: AbortSignal): Promise<void>;
  /** A failure as a GraftError: GRAFT_STORE_AUTH, GRAFT_STORE_NOT_FOUND or GRAFT_STORE_UNREACHABLE. */
  protected abstract classify(err: unknown): GraftError;
  /** Where a store key goes in the layer. */
  protected abstract place(key: string): KeyPlace;
  /**
   * Which part of the layer a key is in, when a source reads several parts
   * (Apollo's namespaces): parts merge in increasing order, later wins, each
   * its document below its single keys. One part (0) unless overridden.
   */
  protected partOf(_key: string): number {
    return 0;
  }

  async load(): Promise<Record<string, unknown>> {
    if (!this.snapshot) await this.first();
    const snapshot = this.snapshot!;
    const data = this.layer(snapshot);
    // A copy: the held snapshot keeps changing in place as watch events arrive, and only what was read may go to the cache.
    this.readFrom.set(data, { snapshot: structuredClone(snapshot), fromCache: this.fromCache });
    return data;
  }

  /** The snapshot this layer was read from is live on every worker: only now is it the last *good* one, and cached. */
  committed(layer: Record<string, unknown>): void {
    const read = this.readFrom.get(layer);
    if (!read) return;
    this.readFrom.delete(layer);
    const { snapshot, fromCache } = read;
    this.live = fingerprint(snapshot);
    if (fromCache) return;
    const stamp = `${this.live}@${snapshot.revision}`;
    if (stamp === this.cached) return;
    try {
      this.cache.write(this.name, snapshot);
      this.cached = stamp;
    } catch (err) {
      this.log.warn('config store snapshot not cached', { revision: snapshot.revision, file: this.cache.file, error: errorMessage(err) });
    }
  }

  watch(onChange: (source: string) => void): () => void {
    this.listeners.add(onChange);
    this.start();
    // A change that arrived since the live content was read must not wait for the next one.
    if (this.snapshot && this.live !== undefined && fingerprint(this.snapshot) !== this.live) queueMicrotask(() => onChange(this.name));
    return () => this.listeners.delete(onChange);
  }

  status(): SourceStatus {
    return { ...this.link.status(), revision: this.snapshot?.revision, fromCache: this.fromCache };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.link.close();
    this.log.info('config store closed', { revision: this.snapshot?.revision });
  }

  // ---- for the sessions of subclasses ----

  /** The snapshot held now, and whether it came from this store in this process (not from the cache file). */
  protected get current(): { snapshot: StoreSnapshot; confirmed: boolean } | undefined {
    return this.snapshot ? { snapshot: this.snapshot, confirmed: !this.fromCache } : undefined;
  }

  /** The session is through: connected, and the snapshot is the store's. */
  protected connected(fields: Record<string, unknown> = {}): void {
    this.running?.connected(fields);
  }

  /** A full read: the snapshot is what the store holds now; a change is reported as coming from `by` (this source, or a part of it). */
  protected replace(next: StoreSnapshot, by = this.name): void {
    const before = this.snapshot;
    const wasCached = this.fromCache;
    const entries = Object.fromEntries(Object.entries(next.entries).filter(([key]) => this.place(key) !== undefined));
    this.snapshot = { ...next, entries };
    const empty = Object.keys(entries).length === 0 && !next.problem;
    if (empty && (!before || Object.keys(before.entries).length > 0)) this.log.warn('config store holds no keys for this source: its layer is empty', { revision: next.revision });
    this.fromCache = false;
    this.events.emit('snapshot');
    if (wasCached && before) this.log.info('config store reachable again; its content replaces the cached snapshot', { cachedRevision: before.revision, revision: next.revision });
    if (!before || fingerprint(before) !== fingerprint(this.snapshot)) this.changed(by);
  }

  /** One key changed (value undefined: deleted) at a revision. */
  protected update(revision: string, key: string, value: string | undefined): void {
    const snapshot = this.snapshot;
    if (!snapshot || this.place(key) === undefined) return;
    snapshot.revision = revision;
    if (snapshot.entries[key] === value) return;
    if (value === undefined) delete snapshot.entries[key];
    else snapshot.entries[key] = value;
    this.log.debug('config store key changed', { key, revision, deleted: value === undefined });
    this.changed();
  }

  /** A resume was not safe: say why before the full read. */
  protected gap(reason: string, fields: Record<string, unknown>): void {
    this.log.warn('config store re-read after a gap', { reason, revision: this.snapshot?.revision, ...fields });
  }

  // ---- internals ----

  private changed(by = this.name): void {
    for (const listener of this.listeners) listener(by);
  }

  private start(): void {
    this.link.start();
  }

  /** The first load: reach the store within the start timeout, else start from the cache file. */
  private async first(): Promise<void> {
    this.start();
    const outcome = await new Promise<'ok' | 'timeout' | GraftError>((resolve) => {
      const done = (value: 'ok' | 'timeout' | GraftError) => {
        clearTimeout(timer);
        this.events.off('snapshot', onSnapshot).off('failed', onFailed);
        resolve(value);
      };
      const onSnapshot = () => done('ok');
      // Wrong credentials or a missing bucket are not outages: the cache must not hide them at start.
      const onFailed = (err: GraftError) => {
        if (err.code === 'GRAFT_STORE_AUTH' || err.code === 'GRAFT_STORE_NOT_FOUND') done(err);
      };
      const timer = setTimeout(() => done('timeout'), this.options.startTimeoutMs);
      this.events.on('snapshot', onSnapshot).on('failed', onFailed);
    });
    if (outcome instanceof GraftError) throw outcome;
    if (this.snapshot) return;
    const cached = this.cache.read();
    const why = this.link.lastError?.message.replace(`${this.name}: `, '') ?? 'no answer';
    if (!cached) {
      throw new GraftError(
        'GRAFT_STORE_UNREACHABLE',
        `${this.name} could not be reached within ${this.options.startTimeoutMs / 1000} s (${why}) and no snapshot of it is cached in ${this.cache.file}; start the store or fix the address (a master starts without its store only from a snapshot cached by an earlier run)`,
      );
    }
    this.snapshot = { revision: cached.revision, ...(cached.epoch ? { epoch: cached.epoch } : {}), entries: cached.entries };
    this.fromCache = true;
    this.cached = `${fingerprint(cached)}@${cached.revision}`;
    this.log.warn('config store unreachable; starting from its cached snapshot', { code: 'GRAFT_STORE_UNREACHABLE', revision: cached.revision, savedAt: cached.savedAt, file: this.cache.file, error: why });
  }

  /** The layer: in each part, the document key (if any) below the single keys, each value JSON when it parses. */
  private layer({ entries, problem }: StoreSnapshot): Record<string, unknown> {
    if (problem) throw new GraftError('GRAFT_CONFIG_PARSE', `${this.name}: ${problem}`);
    const parts = new Map<number, { document: Record<string, unknown>; keys: Record<string, unknown> }>();
    for (const [key, value] of Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const place = this.place(key);
      if (place === undefined) continue;
      const index = this.partOf(key);
      let part = parts.get(index);
      if (!part) parts.set(index, (part = { document: {}, keys: {} }));
      if (place === 'document') {
        if (value.trim() !== '') part.document = parseConfigText(value, key ? `${this.name} key ${key}` : this.name, value.trimStart().startsWith('{') ? 'json' : 'yaml');
        continue;
      }
      if (place.path.length === 0 || place.path.some((p) => p === '')) {
        throw new GraftError('GRAFT_BAD_KEY_PATH', `${this.name} key ${JSON.stringify(key)} maps to no key path (an empty segment); rename the key in the store`);
      }
      setPath(part.keys, place.path, coerce(value));
    }
    return mergeLayers([...parts].sort(([a], [b]) => a - b).flatMap(([, part]) => [part.document, part.keys]));
  }
}

/** The content of a snapshot (not its revision), for "did it change". */
export function fingerprint({ entries, problem }: StoreSnapshot): string {
  return shortHash(stableStringify([entries, problem ?? null]));
}
