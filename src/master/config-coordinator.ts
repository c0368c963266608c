import { touches } from '../config/key-path.js';
import type { ConfigLoader, Loaded } from '../config/loader.js';
import { changedPaths, contentHash, mergeLayers } from '../config/snapshot.js';
import type { ConfigSource, SourceStatus } from '../config/sources/source.js';
import { Slot, type BuildContext } from '../core/slot.js';
import type { Generation } from '../core/generation.js';
import { GraftError, errorFields, errorMessage } from '../core/errors.js';
import type { ConfigPayload } from '../core/ipc.js';
import type { ApplyOutcome, ConfigInheritance, HistoryEntry } from '../config/history.js';
import type { Logger } from '../core/log.js';
import type { Observe } from '../observe/observers.js';
import type { PoolChange, ReloadOutcome, WorkerPool } from '../pool/worker-pool.js';
import { WorkerRound } from './worker-round.js';

/** Keys of graft's own that need new processes when they change. */
export const RESTART_KEYS = ['graft.port', 'graft.workers'];

/** What one change read from the sources, or why they did not load. */
type Read = { source: string; loaded: Loaded } | { source: string; error: unknown };

interface Candidate {
  payload: ConfigPayload;
  changed: string[];
  mode: 'in-place' | 'reload';
  /** The workers that validated it and hold it (in-place changes), to commit it on. */
  prepared: WorkerRound<unknown> | undefined;
  /** What the sources were read as (none for a snapshot taken over): told to them once it is live. */
  loaded: Loaded | undefined;
}

export interface CoordinatorOptions {
  /** How long a worker may take to validate a version, and to apply it. */
  workerTimeoutMs: number;
  /** Set when -w / -p were given: the config's graft.workers / graft.port do not apply. */
  fixed: { port: boolean; workers: boolean };
  /** A zero-downtime worker reload with the given changes, recorded like every other reload. */
  reload: (reason: string, change: PoolChange) => Promise<ReloadOutcome>;
  /** Told every version recorded in the history, accepted or rejected. */
  observe?: Observe;
}

const HISTORY = 100;

/**
 * The one config watcher per host. It loads and merges the sources, then moves
 * every worker to the new snapshot with two phases: each live worker validates
 * it against the service's schema (prepare, the slot's verify) and only if all
 * accept does any of them make it live (commit, the slot's commit step); if
 * one refuses, the others drop it. Keys that need new processes go through a
 * zero-downtime reload instead. A content that was rejected is reported once:
 * asked for again unchanged, it gets the same answer without a new version or
 * history entry.
 */
export class ConfigCoordinator {
  private readonly slot: Slot<Candidate, Read, ApplyOutcome>;
  private readonly history: HistoryEntry[] = [];
  private pool: WorkerPool | undefined;
  private stopWatching: (() => void) | undefined;
  /** The last rejected content (a load error, or merged data under a worker generation) and its error. */
  private lastRejection: { key: string; error: unknown } | undefined;

  constructor(
    private readonly loader: ConfigLoader,
    private readonly log: Logger,
    private readonly options: CoordinatorOptions,
  ) {
    this.slot = new Slot<Candidate, Read, ApplyOutcome>(
      {
        build: (ctx) => this.build(ctx),
        verify: (candidate, ctx) => this.verify(candidate, ctx),
        commit: (next, previous) => this.commit(next, previous),
      },
      // The master's arbiter runs one change at a time (and merges re-reads that wait): nothing queues here.
      { name: 'config' },
    );
  }

  /** Load the first snapshot, or take over a predecessor's; throws (and graft start fails) if a source is broken. */
  async init(inherited?: ConfigInheritance): Promise<ConfigPayload> {
    if (inherited) {
      this.history.push(...inherited.history.slice(-HISTORY));
      this.slot.adopt({ payload: inherited.live, changed: [], mode: 'in-place', prepared: undefined, loaded: undefined }, inherited.live.version);
      this.log.info('config taken over from the previous master', { configVersion: inherited.live.version, hash: inherited.live.hash });
      return inherited.live;
    }
    return (await this.slot.replace(await this.read('startup'))).generation.value.payload;
  }

  attach(pool: WorkerPool): void {
    this.pool = pool;
  }

  get current(): ConfigPayload {
    const live = this.slot.current;
    if (!live) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'the master has not loaded its config yet');
    return live.value.payload;
  }

  inheritance(): ConfigInheritance {
    return { live: this.current, history: this.recent() };
  }

  /** graft's own settings from the config (`graft.port`, `graft.workers`), when valid. */
  settings(payload = this.current): { port?: number; workers?: number } {
    const own = payload.data.graft as { port?: unknown; workers?: unknown } | undefined;
    const port = Number.isInteger(own?.port) && (own!.port as number) >= 0 && (own!.port as number) <= 65535 ? (own!.port as number) : undefined;
    const workers = Number.isInteger(own?.workers) && (own!.workers as number) >= 1 ? (own!.workers as number) : undefined;
    return { ...(port !== undefined && !this.options.fixed.port ? { port } : {}), ...(workers !== undefined && !this.options.fixed.workers ? { workers } : {}) };
  }

  /** Call onChange with the names of the sources that changed (a burst is one call). */
  watch(onChange: (source: string) => void): void {
    this.stopWatching = this.loader.watch((sources) => onChange(sources.join(',')));
  }

  /** Stop watching and close the sources' connections (stores), so nothing keeps the process alive. */
  async close(): Promise<void> {
    this.stopWatching?.();
    this.stopWatching = undefined;
    await this.loader.close();
  }

  /** The sources with a connection (config stores): connected or not, at which revision. */
  sourceStatus(): SourceStatus[] {
    return this.loader.sources.flatMap((s) => (s.status ? [s.status()] : []));
  }

  recent(): HistoryEntry[] {
    return [...this.history];
  }

  get lastRejected(): HistoryEntry | undefined {
    return [...this.history].reverse().find((h) => !h.accepted);
  }

  /** Re-read every source and move the workers to the result; resolves when they all run it. */
  async change(source: string): Promise<ApplyOutcome> {
    const read = await this.read(source);
    // What was rejected last time and is read again unchanged gets the same answer, without a new version or history entry.
    if (this.lastRejection?.key === ('error' in read ? loadKey(read.error) : this.contentKey(read.loaded.hash))) throw this.lastRejection.error;
    if ('loaded' in read) {
      this.lastRejection = undefined; // the sources hold something else now
      if (read.loaded.hash === this.current.hash) return { version: this.current.version, changed: [], mode: 'unchanged', workers: this.workerVersions(), replaced: [] };
    }
    return (await this.slot.replace(read)).result;
  }

  private read(source: string): Promise<Read> {
    return this.loader.load().then(
      (loaded) => ({ source, loaded }),
      (error: unknown) => ({ source, error }),
    );
  }

  /** Validate a file against the running service's schema without applying it: the sources are read, never committed. */
  async check(file: ConfigSource): Promise<{ ok: true; version: number; worker: number }> {
    const worker = this.pool?.liveWorkers()[0];
    if (!worker) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'no ready worker to validate against; try again once the service runs');
    const layers: Array<Record<string, unknown>> = [await file.load()];
    for (const s of this.loader.sources) if (!s.name.startsWith('file:')) layers.push(await s.load());
    const data = mergeLayers(layers);
    const reply = await worker.request({ graft: 'config-check', config: { version: 0, hash: contentHash(data), source: file.name, data } }, this.options.workerTimeoutMs);
    if (!reply.ok) throw GraftError.from(reply.error);
    return { ok: true, version: this.current.version, worker: worker.pid };
  }

  /** What a live worker runs: its validated snapshot (defaults applied). */
  async effective(): Promise<unknown> {
    const worker = this.pool?.liveWorkers()[0];
    if (!worker) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'no ready worker yet');
    const reply = await worker.request({ graft: 'config-get' }, this.options.workerTimeoutMs);
    if (!reply.ok) throw GraftError.from(reply.error);
    return reply.value;
  }

  private async build(ctx: BuildContext<Candidate, Read>): Promise<Candidate> {
    const read = ctx.request!;
    const { source } = read;
    const before = ctx.previous?.payload;
    if ('error' in read) {
      if (!before) throw read.error; // graft start fails with it
      throw this.rejected(ctx.version, source, [], loadKey(read.error), read.error);
    }
    const { loaded } = read;
    const payload: ConfigPayload = { version: ctx.version, hash: loaded.hash, source, data: loaded.data };
    const changed = before ? changedPaths(before.data, loaded.data) : [];
    const restartOn = new Set([...RESTART_KEYS, ...(this.pool?.liveWorkers().flatMap((w) => w.restartOn) ?? [])]);
    const needsRestart = changed.some((c) => [...restartOn].some((k) => touches(k, c)));
    return { payload, changed, mode: needsRestart ? 'reload' : 'in-place', prepared: undefined, loaded };
  }

  private async verify(candidate: Candidate, ctx: BuildContext<Candidate, Read>): Promise<void> {
    const pool = this.pool;
    if (!pool || !ctx.previous) return; // the first snapshot: workers start on it
    const { version, source } = candidate.payload;
    const key = this.contentKey(candidate.payload.hash);
    if (candidate.mode === 'reload') {
      this.log.info('config change needs new processes: reloading workers', { configVersion: version, changed: candidate.changed });
      try {
        await this.options.reload(`config v${version}`, { config: candidate.payload, ...this.settings(candidate.payload) });
      } catch (err) {
        // The new processes may have failed for reasons of their own: the same content may be tried again.
        throw this.rejected(version, source, candidate.changed, undefined, err);
      }
      return;
    }
    const timeoutMs = this.options.workerTimeoutMs;
    const { round, outcome } = await WorkerRound.prepare(pool.liveWorkers(), { graft: 'config-prepare', config: candidate.payload, timeoutMs }, { graft: 'config-abort', version }, timeoutMs);
    if (!outcome.ok) {
      const refused = outcome.refused[0]!;
      const err = new GraftError(refused.error.code, `worker ${refused.w.pid} (generation ${refused.w.generation}) refused config version ${version}: ${refused.error.message}`, { cause: refused.error });
      throw this.rejected(version, source, candidate.changed, err.code === 'GRAFT_CONFIG_INVALID' ? key : undefined, err);
    }
    candidate.prepared = round;
  }

  /** Inside the lock: every prepared worker makes the version live; one that fails is replaced. */
  private async commit(next: Generation<Candidate>, previous: Generation<Candidate> | undefined): Promise<ApplyOutcome> {
    const candidate = next.value;
    const { payload } = candidate;
    if (candidate.loaded) this.loader.committed(candidate.loaded);
    if (!previous) {
      this.record({ version: payload.version, source: payload.source, changed: [], accepted: true, mode: 'in-place' });
      this.log.info('config loaded', { configVersion: payload.version, hash: payload.hash, sources: this.loader.sources.map((s) => s.name) });
      return { version: payload.version, changed: [], mode: 'in-place', workers: [], replaced: [] };
    }
    this.lastRejection = undefined;
    const replaced = candidate.mode === 'in-place' ? await this.commitInPlace(candidate) : [];
    this.record({ version: payload.version, source: payload.source, changed: candidate.changed, accepted: true, mode: candidate.mode });
    this.log.info('config applied', { configVersion: payload.version, hash: payload.hash, changed: candidate.changed, mode: candidate.mode, source: payload.source });
    return { version: payload.version, changed: candidate.changed, mode: candidate.mode, workers: this.workerVersions(), replaced };
  }

  private async commitInPlace(candidate: Candidate): Promise<Array<{ pid: number; error: string }>> {
    const { version } = candidate.payload;
    // First: a worker replaced below, or forked for the set later, starts on this version.
    this.pool?.configCommitted(candidate.payload);
    const answers = (await candidate.prepared?.commit({ graft: 'config-commit', version })) ?? [];
    for (const { w } of answers.filter((a) => a.error === undefined)) w.stats = { ...w.stats, configVersion: version };
    const failed = answers.flatMap(({ w, error }) => (error === undefined ? [] : [{ w, error: error.message }]));
    for (const { w, error } of failed) {
      this.log.error('worker failed to apply the config; replacing it', { code: 'GRAFT_CONFIG_APPLY_FAILED', configVersion: version, workerPid: w.pid, error });
      await this.pool?.replace(w, `failed to apply config version ${version}`, 'config');
    }
    return failed.map(({ w, error }) => ({ pid: w.pid, error }));
  }

  /** A content as the workers judge it: the same data may pass under another generation's schema. */
  private contentKey(hash: string): string {
    return `${hash}@${this.pool?.generation ?? 0}`;
  }

  private workerVersions(): ApplyOutcome['workers'] {
    return (this.pool?.allWorkers() ?? [])
      .filter((w) => w.state === 'ready')
      .map((w) => ({ pid: w.pid, generation: w.generation, configVersion: w.stats.configVersion }));
  }

  /**
   * Record and log a rejection; returns the error to throw. A rejection of the
   * content itself (key: what was rejected) is reported once while that content stays.
   */
  private rejected(version: number, source: string, changed: string[], key: string | undefined, err: unknown): unknown {
    const fields = errorFields(err);
    if (fields.code === 'GRAFT_STOPPING') {
      // Not a verdict on the content: the master stopped while the change ran.
      this.log.info('config change abandoned: the master is stopping', { attempted: version, source });
      return err;
    }
    this.lastRejection = key === undefined ? undefined : { key, error: err };
    this.record({ version, source, changed, accepted: false, ...(fields.code ? { code: fields.code } : {}), error: fields.error });
    this.log.error('config change rejected; the live config stays', { configVersion: this.slot.current?.version, attempted: version, source, ...fields });
    // Said only where something is live: at startup there is nothing to stay.
    const live = this.slot.current?.version;
    if (live !== undefined && err instanceof GraftError && !err.message.includes('the live config stays')) err.message += `; the live config stays version ${live}`;
    return err;
  }

  private record(entry: Omit<HistoryEntry, 'at'>): void {
    this.history.push({ at: new Date().toISOString(), ...entry });
    if (this.history.length > HISTORY) this.history.shift();
    const { version, accepted, source, changed, code, error } = entry;
    this.options.observe?.({ type: 'config', version, accepted, source, changed, ...(code ? { code } : {}), ...(error ? { error } : {}) });
  }
}

/** A load error as a rejected content: the same error again is reported once. */
function loadKey(err: unknown): string {
  return `load:${errorMessage(err)}`;
}
