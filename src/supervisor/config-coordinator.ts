import { touches } from '../config/key-path.js';
import type { ConfigLoader } from '../config/loader.js';
import { changedPaths, contentHash, mergeLayers } from '../config/snapshot.js';
import type { ConfigSource } from '../config/sources/source.js';
import { Slot, Unchanged } from '../core/slot.js';
import { GraftError, errorMessage } from '../errors.js';
import type { ConfigPayload } from '../ipc.js';
import type { Logger } from '../log.js';
import type { WorkerPool } from './worker-pool.js';
import type { WorkerProcess } from './worker-process.js';

/** Keys of graft's own that need new processes when they change. */
export const RESTART_KEYS = ['graft.port', 'graft.workers'];

export interface HistoryEntry {
  version: number;
  at: string;
  source: string;
  changed: string[];
  accepted: boolean;
  mode?: 'in-place' | 'reload';
  code?: string;
  error?: string;
}

export interface ApplyOutcome {
  version: number;
  changed: string[];
  mode: 'in-place' | 'reload' | 'unchanged';
  workers: Array<{ pid: number; generation: number; configVersion: number }>;
  replaced: Array<{ pid: number; error: string }>;
}

interface Candidate {
  payload: ConfigPayload;
  changed: string[];
  mode: 'in-place' | 'reload';
  prepared: WorkerProcess[];
}

const HISTORY = 100;

/**
 * The one config watcher per host. It loads and merges the sources, then moves
 * every worker to the new snapshot with two phases: each live worker validates
 * it against the service's schema (prepare) and only if all accept does any of
 * them apply it (commit). Keys that need new processes go through a
 * zero-downtime reload instead. The snapshots themselves live in a generation
 * slot, so changes are serialized and bursts coalesce.
 */
export class ConfigCoordinator {
  private readonly slot: Slot<Candidate, string>;
  private readonly history: HistoryEntry[] = [];
  private pool: WorkerPool | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(
    private readonly loader: ConfigLoader,
    private readonly log: Logger,
    private readonly options: { prepareTimeoutMs: number; applyTimeoutMs: number; fixed: { port: boolean; workers: boolean } },
  ) {
    this.slot = new Slot<Candidate, string>(
      {
        build: (ctx) => this.build(ctx.version, ctx.previous, ctx.request ?? 'startup'),
        verify: (candidate) => this.verify(candidate),
      },
      { name: 'config', drainTimeoutMs: 1000, merge: (a, b) => (a === b ? a : `${a},${b}`) },
    );
  }

  /** Load the first snapshot; throws (and graft start fails) if a source is broken. */
  async init(): Promise<ConfigPayload> {
    const first = await this.slot.swap();
    this.record({ version: first.version, source: first.value.payload.source, changed: [], accepted: true, mode: 'in-place' });
    this.log.info('config loaded', { configVersion: first.version, hash: first.value.payload.hash, sources: this.loader.sources.map((s) => s.name) });
    return first.value.payload;
  }

  attach(pool: WorkerPool): void {
    this.pool = pool;
  }

  get current(): ConfigPayload {
    const live = this.slot.current;
    if (!live) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'the master has not loaded its config yet');
    return live.value.payload;
  }

  /** graft's own settings from the config (`graft.port`, `graft.workers`), when valid. */
  settings(payload = this.current): { port?: number; workers?: number } {
    const own = payload.data.graft as { port?: unknown; workers?: unknown } | undefined;
    const port = Number.isInteger(own?.port) && (own!.port as number) >= 0 && (own!.port as number) <= 65535 ? (own!.port as number) : undefined;
    const workers = Number.isInteger(own?.workers) && (own!.workers as number) >= 1 ? (own!.workers as number) : undefined;
    return { ...(port !== undefined && !this.options.fixed.port ? { port } : {}), ...(workers !== undefined && !this.options.fixed.workers ? { workers } : {}) };
  }

  startWatching(): void {
    this.stopWatching = this.loader.watch((sources) => {
      this.change(sources.join(',')).catch(() => {
        // recorded in the history and logged
      });
    });
  }

  close(): void {
    this.stopWatching?.();
  }

  recent(): HistoryEntry[] {
    return [...this.history];
  }

  get lastRejected(): HistoryEntry | undefined {
    return [...this.history].reverse().find((h) => !h.accepted);
  }

  /** Re-read every source and move the workers to the result; resolves when they all run it. */
  async change(source: string): Promise<ApplyOutcome> {
    let live;
    try {
      live = await this.slot.swap(source);
    } catch (err) {
      // A worker that booted while this change ran must still reach the live version.
      await this.catchUp();
      if (err instanceof Unchanged) {
        return { version: this.current.version, changed: [], mode: 'unchanged', workers: this.workerVersions(), replaced: [] };
      }
      throw err;
    }
    const candidate = live.value;
    const replaced = candidate.mode === 'in-place' ? await this.commitInPlace(candidate) : [];
    await this.catchUp();
    const outcome: ApplyOutcome = {
      version: candidate.payload.version,
      changed: candidate.changed,
      mode: candidate.mode,
      workers: this.workerVersions(),
      replaced,
    };
    this.record({ version: candidate.payload.version, source: candidate.payload.source, changed: candidate.changed, accepted: true, mode: candidate.mode });
    this.log.info('config applied', { configVersion: candidate.payload.version, hash: candidate.payload.hash, changed: candidate.changed, mode: candidate.mode, source: candidate.payload.source });
    return outcome;
  }

  /** Validate a file against the running service's schema without applying it. */
  async check(file: ConfigSource): Promise<{ ok: true; version: number; worker: number }> {
    const worker = this.pool?.liveWorkers()[0];
    if (!worker) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'no ready worker to validate against; try again once the service runs');
    const layers: Array<Record<string, unknown>> = [await file.load()];
    for (const s of this.loader.sources) if (!s.name.startsWith('file:')) layers.push(await s.load());
    const data = mergeLayers(layers);
    const reply = await worker.request({ graft: 'config-check', config: { version: 0, hash: contentHash(data), source: file.name, data } }, this.options.prepareTimeoutMs);
    if (!reply.ok) throw GraftError.from(reply.error);
    return { ok: true, version: this.current.version, worker: worker.pid };
  }

  /** What a live worker runs: its validated snapshot (defaults applied). */
  async effective(): Promise<unknown> {
    const worker = this.pool?.liveWorkers()[0];
    if (!worker) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'no ready worker yet');
    const reply = await worker.request({ graft: 'config-get' }, this.options.prepareTimeoutMs);
    if (!reply.ok) throw GraftError.from(reply.error);
    return reply.value;
  }

  /** A worker that became ready on an older snapshot (it booted during a change) is moved forward. */
  onWorkerReady(worker: WorkerProcess): void {
    const live = this.slot.current?.value.payload;
    if (!live || this.slot.swapping || worker.stats.configVersion >= live.version) return;
    void this.applyTo(worker, live);
  }

  private async build(version: number, previous: Candidate | undefined, source: string): Promise<Candidate> {
    let loaded;
    try {
      loaded = await this.loader.load();
    } catch (err) {
      if (previous) this.reject(version, source, [], err);
      throw err;
    }
    const before = previous?.payload;
    if (before && before.hash === loaded.hash) throw new Unchanged(before.version);
    const payload: ConfigPayload = { version, hash: loaded.hash, source, data: loaded.data };
    const changed = before ? changedPaths(before.data, loaded.data) : [];
    const restartOn = new Set([...RESTART_KEYS, ...(this.pool?.liveWorkers().flatMap((w) => w.restartOn) ?? [])]);
    const needsRestart = changed.some((c) => [...restartOn].some((k) => touches(k, c)));
    return { payload, changed, mode: needsRestart ? 'reload' : 'in-place', prepared: [] };
  }

  private async verify(candidate: Candidate): Promise<void> {
    const pool = this.pool;
    if (!pool || candidate.changed.length === 0) return;
    const { version, source } = candidate.payload;
    try {
      if (candidate.mode === 'reload') {
        this.log.info('config change needs new processes: reloading workers', { configVersion: version, changed: candidate.changed });
        await pool.reload({ config: candidate.payload, ...this.settings(candidate.payload) });
        return;
      }
      const workers = pool.liveWorkers();
      const replies = await Promise.all(workers.map((w) => w.request({ graft: 'config-prepare', config: candidate.payload }, this.options.prepareTimeoutMs).then((reply) => ({ w, reply }))));
      const refused = replies.find((r) => !r.reply.ok);
      if (refused && !refused.reply.ok) {
        const err = GraftError.from(refused.reply.error);
        throw new GraftError(err.code, `worker ${refused.w.pid} (generation ${refused.w.generation}) refused config version ${version}: ${err.message}`);
      }
      candidate.prepared = workers;
    } catch (err) {
      this.reject(version, source, candidate.changed, err);
      throw err;
    }
  }

  private async commitInPlace(candidate: Candidate): Promise<Array<{ pid: number; error: string }>> {
    const { version } = candidate.payload;
    const failed: Array<{ pid: number; error: string }> = [];
    await Promise.all(
      candidate.prepared.map(async (w) => {
        try {
          const reply = await w.request({ graft: 'config-commit', version }, this.options.applyTimeoutMs);
          if (!reply.ok) throw GraftError.from(reply.error);
          w.stats = { ...w.stats, configVersion: version };
        } catch (err) {
          failed.push({ pid: w.pid, error: errorMessage(err) });
        }
      }),
    );
    for (const f of failed) {
      const w = candidate.prepared.find((x) => x.pid === f.pid)!;
      this.log.error('worker failed to apply the config; replacing it', { code: 'GRAFT_CONFIG_APPLY_FAILED', configVersion: version, workerPid: f.pid, error: f.error });
      await this.pool?.replace(w, `failed to apply config version ${version}`);
    }
    return failed;
  }

  /** Workers that booted on an older snapshot while a change ran. */
  private async catchUp(): Promise<void> {
    const live = this.current;
    const stale = (this.pool?.allWorkers() ?? []).filter((w) => w.state === 'ready' && !w.retiring && w.stats.configVersion < live.version);
    await Promise.all(stale.map((w) => this.applyTo(w, live)));
  }

  private async applyTo(worker: WorkerProcess, payload: ConfigPayload): Promise<void> {
    try {
      const reply = await worker.request({ graft: 'config-apply', config: payload }, this.options.applyTimeoutMs);
      if (!reply.ok) throw GraftError.from(reply.error);
      worker.stats = { ...worker.stats, configVersion: payload.version };
    } catch (err) {
      this.log.error('worker failed to apply the config; replacing it', { code: 'GRAFT_CONFIG_APPLY_FAILED', configVersion: payload.version, workerPid: worker.pid, error: errorMessage(err) });
      await this.pool?.replace(worker, `failed to apply config version ${payload.version}`);
    }
  }

  private workerVersions(): ApplyOutcome['workers'] {
    return (this.pool?.allWorkers() ?? [])
      .filter((w) => w.state === 'ready')
      .map((w) => ({ pid: w.pid, generation: w.generation, configVersion: w.stats.configVersion }));
  }

  private reject(version: number, source: string, changed: string[], err: unknown): void {
    const code = err instanceof GraftError ? err.code : undefined;
    this.record({ version, source, changed, accepted: false, ...(code ? { code } : {}), error: errorMessage(err) });
    this.log.error('config change rejected; the live config stays', { configVersion: this.slot.current?.version, attempted: version, source, code, error: errorMessage(err) });
  }

  private record(entry: Omit<HistoryEntry, 'at'>): void {
    this.history.push({ at: new Date().toISOString(), ...entry });
    if (this.history.length > HISTORY) this.history.shift();
  }
}
