import cluster from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Slot, type BuildContext } from '../core/slot.js';
import { slotEventLogger } from '../core/slot-log.js';
import { GraftError } from '../errors.js';
import { WorkerEnv, type ConfigPayload } from '../ipc.js';
import type { Logger } from '../log.js';
import { CrashBackoff } from './crash-backoff.js';
import { WorkerProcess, type WorkerStatus } from './worker-process.js';

export interface PoolOptions {
  entry: string;
  workers: number;
  port: number;
  /** Boot readiness and heartbeat silence limit. */
  timeoutMs: number;
  gracefulTimeoutMs: number;
  idleCloseMs: number;
  lingerMs: number;
  firstGeneration: number;
  /** `--swap`: workers serve the entry as a swappable handler. */
  swap: boolean;
  /** The config snapshot a worker starts on (the latest committed one). */
  config: () => ConfigPayload;
  /** Called when any worker becomes ready (the config layer catches up stragglers). */
  onWorkerReady?: (worker: WorkerProcess) => void;
}

/** What a reload may change besides the code: keys that need new processes. */
export interface ReloadChanges {
  config?: ConfigPayload;
  port?: number;
  workers?: number;
}

/** The workers of one generation: started together, committed together, retired together. */
interface WorkerSet {
  generation: number;
  workers: Set<WorkerProcess>;
  port: number;
}

export interface PoolStatus {
  generation: number | undefined;
  desired: number;
  reloading: boolean;
  crashLoop: boolean;
  workers: WorkerStatus[];
}

const workerMain = new URL(`../worker/main${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** TypeScript needs tsx in the worker: for a .ts entry, or when graft itself runs from source. */
function needsTsx(entry: string): boolean {
  return /\.[cm]?tsx?$/.test(entry) || /\.ts$/.test(fileURLToPath(workerMain));
}

function workerExecArgv(entry: string): string[] {
  const tsx = import.meta.resolve('tsx');
  const inherited: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--inspect')) continue;
    if (arg === '--import' && (argv[i + 1] === 'tsx' || argv[i + 1] === tsx)) {
      i++;
      continue;
    }
    inherited.push(arg);
  }
  return [...inherited, '--enable-source-maps', ...(needsTsx(entry) ? ['--import', tsx] : [])];
}

/**
 * The worker pool: a generation slot whose generations are sets of worker
 * processes. A reload builds a whole new set (all at once), commits it when
 * every worker is ready, then drains the old set. Within the live set, crashed
 * workers are replaced with backoff and blocked ones are killed.
 */
export class WorkerPool {
  private readonly slot: Slot<WorkerSet, ReloadChanges>;
  private readonly known = new Set<WorkerProcess>();
  private readonly backoff = new CrashBackoff();
  private readonly replacements = new Set<NodeJS.Timeout>();
  private watchdog: NodeJS.Timeout | undefined;
  private desired: number;
  private port: number;
  private stopping = false;

  constructor(
    private readonly options: PoolOptions,
    private readonly log: Logger,
  ) {
    this.desired = options.workers;
    this.port = options.port;
    // args: [] so the app's process.argv does not carry graft's own flags.
    cluster.setupPrimary({ exec: fileURLToPath(workerMain), execArgv: workerExecArgv(options.entry), args: [], silent: false });
    this.slot = new Slot<WorkerSet, ReloadChanges>(
      {
        build: (ctx) => this.buildSet(ctx),
        drain: (generation) => this.retireSet(generation.value),
        dispose: (set) => {
          for (const w of set.workers) w.kill();
        },
      },
      {
        name: 'workers',
        merge: (waiting, later) => ({ ...waiting, ...later }),
        drainTimeoutMs: options.gracefulTimeoutMs + 5000,
        firstVersion: options.firstGeneration,
        onEvent: slotEventLogger(
          log,
          {
            build: 'reload: starting generation',
            commit: 'reload: generation committed',
            reject: 'reload: generation rejected; the live generation keeps serving',
            drain: 'generation draining',
            dispose: 'generation retired',
            disposeError: 'generation dispose failed',
          },
          (e) => (e.type === 'build' ? { workers: this.desired } : e.type === 'reject' ? { live: this.slot.current?.version } : {}),
        ),
      },
    );
  }

  get generation(): number | undefined {
    return this.slot.current?.version;
  }

  get workerCount(): number {
    return this.desired;
  }

  /** Boot the first generation; rejects with the first worker's failure. */
  async start(): Promise<void> {
    await this.slot.swap();
    const checkMs = Math.max(50, Math.min(1000, Math.floor(this.options.timeoutMs / 4)));
    this.watchdog = setInterval(() => this.checkHeartbeats(), checkMs);
    this.watchdog.unref();
  }

  get currentPort(): number {
    return this.port;
  }

  /**
   * Zero-downtime reload: resolves with the new generation once it serves.
   * With changes (a config that needs new processes, a new port or count),
   * the new generation starts with them; if it fails, nothing changes.
   */
  async reload(changes?: ReloadChanges): Promise<{ generation: number; previous: number | undefined }> {
    if (this.stopping) throw new GraftError('GRAFT_STOPPING', 'the master is stopping; reload refused');
    const previous = this.slot.current;
    const committed = await this.slot.swap(changes);
    this.port = committed.value.port;
    this.topUp();
    // Answer only once the old generation is out of the round-robin: a client that
    // connects after this reaches the new code.
    if (previous) await this.listenersClosed([...previous.value.workers]);
    return { generation: committed.version, previous: previous?.version };
  }

  private async listenersClosed(workers: WorkerProcess[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(workers.map((w) => w.closed)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Ready workers of the live generation: the ones a config change must reach. */
  liveWorkers(): WorkerProcess[] {
    return [...(this.slot.current?.value.workers ?? [])].filter((w) => w.state === 'ready' && !w.retiring);
  }

  /** Every worker the master knows, in any state. */
  allWorkers(): WorkerProcess[] {
    return [...this.known];
  }

  /** Start a fresh worker in w's place (on the current config), then retire w. */
  async replace(w: WorkerProcess, reason: string): Promise<void> {
    const set = this.slot.current?.value;
    if (!set || !set.workers.has(w) || this.stopping) return;
    this.log.warn('replacing worker', { generation: set.generation, worker: w.index, workerPid: w.pid, reason });
    set.workers.delete(w);
    const fresh = this.fork(set, w.index, w.restarts + 1);
    set.workers.add(fresh);
    await fresh.ready.catch(() => {});
    await this.retireWorker(w);
  }

  /** Change the worker count of the live generation (and of every later one). */
  async scale(count: number): Promise<{ from: number; to: number }> {
    if (!Number.isInteger(count) || count < 1) {
      throw new GraftError('GRAFT_BAD_ARGUMENT', `worker count must be a whole number of at least 1, got ${count}`);
    }
    if (this.stopping) throw new GraftError('GRAFT_STOPPING', 'the master is stopping; scale refused');
    const from = this.desired;
    this.desired = count;
    const set = this.slot.current?.value;
    if (!set) return { from, to: count };
    const active = [...set.workers].filter((w) => !w.retiring);
    if (active.length > count) {
      const surplus = active.sort((a, b) => b.index - a.index).slice(0, active.length - count);
      for (const w of surplus) set.workers.delete(w);
      this.log.info('scaling down', { generation: set.generation, from, to: count, pids: surplus.map((w) => w.pid) });
      await Promise.all(surplus.map((w) => this.retireWorker(w)));
    } else if (active.length < count) {
      this.log.info('scaling up', { generation: set.generation, from, to: count });
      const started = this.topUp();
      const results = await Promise.allSettled(started.map((w) => w.ready));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
    return { from, to: count };
  }

  /** Graceful: drain every worker. Fast: kill them. */
  async stop(fast: boolean): Promise<void> {
    this.stopping = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const t of this.replacements) clearTimeout(t);
    this.replacements.clear();
    if (fast) {
      void this.slot.close(); // no queued reload may start workers now
      for (const w of this.known) w.kill();
    } else {
      await this.slot.close();
      await Promise.all([...this.known].map((w) => this.retireWorker(w)));
    }
    await Promise.all([...this.known].map((w) => w.exited));
  }

  status(): PoolStatus {
    return {
      generation: this.slot.current?.version,
      desired: this.desired,
      reloading: this.slot.swapping,
      crashLoop: this.backoff.inLoop(),
      workers: [...this.known].map((w) => w.status()).sort((a, b) => a.generation - b.generation || a.index - b.index),
    };
  }

  private async buildSet(ctx: BuildContext<WorkerSet, ReloadChanges>): Promise<WorkerSet> {
    const changes = ctx.request ?? {};
    const desiredBefore = this.desired;
    if (changes.workers) this.desired = changes.workers;
    // The live generation's port, not this.port: a queued swap runs before reload() has read the last commit.
    const set: WorkerSet = { generation: ctx.version, workers: new Set(), port: changes.port ?? ctx.previous?.port ?? this.port };
    for (let index = 0; index < this.desired; index++) set.workers.add(this.fork(set, index, 0, changes.config));
    const aborted = new Promise<never>((_, reject) => {
      if (ctx.signal.aborted) reject(ctx.signal.reason);
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
    });
    aborted.catch(() => {});
    try {
      await Promise.race([Promise.all([...set.workers].map((w) => w.ready)), aborted]);
    } catch (err) {
      // Roll back: the live generation keeps serving (with its worker count); the new one goes away.
      if (changes.workers) this.desired = desiredBefore;
      await Promise.all([...set.workers].map((w) => this.retireWorker(w)));
      throw err;
    }
    return set;
  }

  private fork(set: WorkerSet, index: number, restarts: number, config?: ConfigPayload): WorkerProcess {
    const heartbeatMs = Math.max(20, Math.min(1000, Math.floor(this.options.timeoutMs / 4)));
    const worker = cluster.fork({
      PORT: String(set.port),
      [WorkerEnv.entry]: this.options.entry,
      [WorkerEnv.generation]: String(set.generation),
      [WorkerEnv.index]: String(index),
      [WorkerEnv.heartbeatMs]: String(heartbeatMs),
      [WorkerEnv.idleCloseMs]: String(this.options.idleCloseMs),
      [WorkerEnv.lingerMs]: String(this.options.lingerMs),
      ...(this.options.swap ? { [WorkerEnv.swap]: '1' } : {}),
    });
    const wp = new WorkerProcess(worker, set.generation, index, restarts, this.options.timeoutMs, this.options.entry);
    this.known.add(wp);
    // The snapshot answers the worker's hello: it waits for it before loading the app.
    wp.onHello = () => worker.send({ graft: 'config-init', config: config ?? this.options.config() });
    this.log.info('worker started', { generation: set.generation, worker: index, workerPid: wp.pid, restarts });
    wp.ready.then(
      () => {
        this.log.info('worker ready', { generation: set.generation, worker: index, workerPid: wp.pid, bootMs: Date.now() - wp.startedAt, configVersion: wp.stats.configVersion });
        this.options.onWorkerReady?.(wp);
      },
      () => {},
    );
    void wp.exited.then((exit) => this.onExit(wp, set, exit.code, exit.signal));
    return wp;
  }

  private onExit(wp: WorkerProcess, set: WorkerSet, code: number | null, signal: string | null): void {
    this.known.delete(wp);
    const live = this.slot.current?.value === set && set.workers.has(wp);
    set.workers.delete(wp);
    const expected = wp.retiring || this.stopping || !live;
    const fields = { generation: wp.generation, worker: wp.index, workerPid: wp.pid, code, signal, served: wp.stats.served };
    if (expected) {
      this.log.info('worker exited', fields);
      return;
    }
    const { delayMs, loopStarted, recent } = this.backoff.record();
    this.log.warn('worker died; replacing it', { ...fields, delayMs, crashesLastMinute: recent, error: wp.bootError?.message });
    if (loopStarted) {
      this.log.error('workers are crash-looping; replacements are throttled', {
        code: 'GRAFT_CRASH_LOOP',
        generation: set.generation,
        crashesLastMinute: recent,
        lastError: wp.bootError?.message,
      });
    }
    const timer = setTimeout(() => {
      this.replacements.delete(timer);
      if (this.stopping || this.slot.current?.value !== set || this.activeCount(set) >= this.desired) return;
      set.workers.add(this.fork(set, wp.index, wp.restarts + 1));
    }, delayMs);
    this.replacements.add(timer);
  }

  private activeCount(set: WorkerSet): number {
    return [...set.workers].filter((w) => !w.retiring).length;
  }

  /** Start workers until the live set has the desired count; returns the new ones. */
  private topUp(): WorkerProcess[] {
    const set = this.slot.current?.value;
    if (!set || this.stopping) return [];
    const started: WorkerProcess[] = [];
    const used = new Set([...set.workers].map((w) => w.index));
    for (let index = 0; this.activeCount(set) < this.desired; index++) {
      if (used.has(index)) continue;
      const w = this.fork(set, index, 0);
      set.workers.add(w);
      started.push(w);
    }
    return started;
  }

  private async retireSet(set: WorkerSet): Promise<void> {
    await Promise.all([...set.workers].map((w) => this.retireWorker(w)));
  }

  private async retireWorker(w: WorkerProcess): Promise<void> {
    const timedOut = await w.retire({
      idleCloseMs: this.options.idleCloseMs,
      lingerMs: this.options.lingerMs,
      timeoutMs: this.options.gracefulTimeoutMs,
    });
    if (timedOut) {
      this.log.warn('worker killed after the graceful timeout', {
        generation: w.generation,
        worker: w.index,
        workerPid: w.pid,
        gracefulTimeoutMs: this.options.gracefulTimeoutMs,
        inFlight: w.stats.inFlight,
      });
    }
  }

  private checkHeartbeats(): void {
    const now = Date.now();
    for (const w of this.known) {
      if (w.state !== 'ready' && w.state !== 'draining') continue;
      const silentMs = now - w.lastHeartbeat;
      if (silentMs <= this.options.timeoutMs) continue;
      this.log.error('worker event loop blocked; killing it', {
        code: 'GRAFT_WORKER_BLOCKED',
        generation: w.generation,
        worker: w.index,
        workerPid: w.pid,
        silentMs,
        timeoutMs: this.options.timeoutMs,
      });
      w.lastHeartbeat = now;
      w.kill();
    }
  }
}
