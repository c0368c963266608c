import cluster from 'node:cluster';
import { Slot, unlessAborted, type BuildContext } from '../core/slot.js';
import { slotEventLogger } from '../core/slot-log.js';
import { GraftError, errorFields } from '../core/errors.js';
import { WorkerEnv, type ConfigPayload, type MasterMessage, type ReadyMode } from '../core/ipc.js';
import type { Logger } from '../core/log.js';
import type { ServiceLog } from '../logs/service-log.js';
import { Restarts, type Degraded, type GenerationRecord, type RestartPolicy } from './restart-policy.js';
import { unobserved, type Observe, type RestartReason } from '../observe/observers.js';
import { CodeScan } from './code-version.js';
import type { EntryBuilds } from './entry-builds.js';
import { primarySettings, WORKER_LOG_ENV } from './worker-exec.js';
import { takeWarmWorker } from './warm-workers.js';
import { WorkerProcess, type WorkerStatus } from './worker-process.js';

export interface PoolOptions {
  entry: string;
  /** The app's own arguments: every worker's process.argv is [node, entry, ...args]. */
  args?: string[];
  /** The service's name, in every worker's process title. */
  service: string;
  /** The first generation's worker count. */
  workers: number;
  port: number;
  /** How long a new worker may take to become ready. */
  readyTimeoutMs: number;
  /** --ready: when a worker whose entry is not a defineService counts as ready. */
  ready: ReadyMode;
  /** How long a ready worker may go without a heartbeat before it counts as blocked. */
  heartbeatTimeoutMs: number;
  /** How long a retired worker may drain before it is killed (--graceful-timeout). */
  drainTimeoutMs: number;
  idleCloseMs: number;
  lingerMs: number;
  firstGeneration: number;
  /** `--swap`: workers serve the entry as a swappable handler. */
  swap: boolean;
  /** Workers load TypeScript through tsx (`--tsx`) instead of a build. */
  tsx: boolean;
  /** A TypeScript entry compiled by the master for each generation (see EntryBuilds). */
  builds: EntryBuilds | undefined;
  /** The service's releases (`graft deploy`); without them every generation runs the entry as it is on disk. */
  releases?: ReleaseCode | undefined;
  /** The live config snapshot: a generation built for no config change of its own is built for this one. */
  config: () => ConfigPayload;
  /** Where every line a worker prints goes, tagged with its generation, index and pid. */
  output: ServiceLog;
  /** --max-memory, --restart-delay, --max-restarts, --min-uptime. */
  policy: RestartPolicy;
  /** A worker of the live generation died on its own: its replacement is asked for here, after the crash backoff. */
  onWorkerLost: (lost: LostWorker) => void;
  /** A worker of the live generation stayed over --max-memory: its replacement is asked for here (the outcome settles the ask). */
  onWorkerOverMemory: (ask: MemoryAsk) => Promise<unknown>;
  /** Workers collect Prometheus metrics (`--metrics`): they load prom-client at boot. */
  metrics?: boolean;
  /** Told of every worker replaced, and why. */
  observe?: Observe;
}

/** Code a generation can run besides the entry on disk: a staged release (src/releases), its entry and working directory inside it. */
export interface Release {
  id: string;
  dir: string;
  entry: string;
}

/** What the pool needs of the service's releases. */
export interface ReleaseCode {
  /** The release the first generation runs, if any: otherwise the entry as it is on disk. */
  first: Release | undefined;
  /** A release's code as workers load it: its kept build (a TypeScript entry) or none, and its code version. */
  code(release: Release): Promise<{ file?: string; version: string }>;
}

/** What a reload may change besides the code: keys that need new processes. */
export interface PoolChange {
  config?: ConfigPayload;
  /** The code to run: a release, or null for the service's entry as it is on disk (default: what the live generation runs). */
  release?: Release | null;
  port?: number;
  workers?: number;
}

export interface ReloadOutcome {
  generation: number;
  /** The generation that served until this one committed. */
  previous: number | undefined;
}

export interface LostWorker {
  generation: number;
  index: number;
  restarts: number;
}

export interface MemoryAsk {
  generation: number;
  index: number;
  pid: number;
  rss: number;
}

/** The workers of one generation: started together, committed together, retired together. */
interface WorkerSet {
  generation: number;
  workers: Set<WorkerProcess>;
  /** The generation's compiled entry, when the master compiles it: every worker of the set runs this code. */
  code: string | undefined;
  /** The release it runs (its workers' entry and working directory are inside it), or undefined for the entry on disk. */
  release: Release | undefined;
  /** What code the set runs (codeVersion()), comparable across hosts: from its own build, or scanned as its workers loaded the entry. */
  codeVersion: string | undefined;
  port: number;
  /**
   * The config snapshot its workers run: the one it was built for, then each
   * one committed to it in place. Every worker forked for the set starts on
   * it, whatever the master's live config says at that moment (a set built
   * for a config change serves before that change is live).
   */
  config: ConfigPayload;
  /** How many workers this generation should run. */
  desired: number;
  /** Its standing against the restart policy (unstable crashes, memory churn). */
  record: GenerationRecord;
}

export interface PoolStatus {
  generation: number | undefined;
  /** The release the live generation runs (`graft deploy`), if any. */
  release: string | undefined;
  /** The live generation's code version (codeVersion()). */
  code: string | undefined;
  /** Workers the live generation should run. */
  desired: number;
  /** Workers of the live generation that are up and not retiring. */
  actual: number;
  reloading: boolean;
  crashLoop: boolean;
  /** What graft stopped repairing in the live generation (--max-restarts used up, fresh workers going over --max-memory right away); empty when healthy. */
  degraded: Degraded[];
  workers: WorkerStatus[];
}

/**
 * The worker pool: a generation slot whose generations are sets of worker
 * processes. A reload builds a whole new set (all at once), commits it when
 * every worker is ready, then drains the old set. Everything else that
 * changes the live set (scale, a lost worker's replacement, a worker that
 * failed to apply the config) is an amend of it. The master's arbiter runs
 * them one at a time; a stop waits for the one in flight.
 */
export class WorkerPool {
  private readonly slot: Slot<WorkerSet, PoolChange, ReloadOutcome>;
  private readonly known = new Set<WorkerProcess>();
  /** What to do when a worker dies or stays over --max-memory: the pool asks, and keeps no count of its own. */
  private readonly restarts: Restarts;
  /** The code version of an entry the pool does not build. */
  private readonly scan: CodeScan;
  private readonly replacements = new Set<NodeJS.Timeout>();
  private watchdog: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly observe: Observe;

  constructor(
    private readonly options: PoolOptions,
    private readonly log: Logger,
  ) {
    this.restarts = new Restarts(options.policy);
    this.scan = new CodeScan(options.entry);
    this.observe = options.observe ?? unobserved;
    cluster.setupPrimary(primarySettings({ tsx: options.tsx, args: options.args ?? [] }));
    this.slot = new Slot<WorkerSet, PoolChange, ReloadOutcome>(
      {
        build: (ctx) => this.buildSet(ctx),
        verify: (set) => this.verifySet(set),
        // A set that served already (its workers took connections once listening) drains, it is not killed.
        discard: async (set) => {
          await this.retireSet(set, AbortSignal.timeout(options.drainTimeoutMs));
          options.builds?.remove(set.generation);
        },
        commit: (next, previous) => this.commitSet(next.value, previous?.value),
        drain: (generation, deadline) => this.retireSet(generation.value, deadline),
        dispose: (set) => {
          for (const w of set.workers) w.kill();
          options.builds?.remove(set.generation);
        },
      },
      {
        name: 'workers',
        drainTimeoutMs: options.drainTimeoutMs,
        firstVersion: options.firstGeneration,
        onEvent: slotEventLogger(
          log,
          {
            build: 'reload: starting generation',
            commit: 'reload: generation committed',
            reject: 'reload: generation rejected',
            drain: 'generation draining',
            dispose: 'generation retired',
            disposeError: 'generation dispose failed',
          },
          (e) => (e.type === 'reject' ? { live: this.slot.current?.version } : {}),
        ),
      },
    );
  }

  get generation(): number | undefined {
    return this.slot.current?.version;
  }

  /** The number the next generation gets (a successor master starts there). */
  get nextGeneration(): number {
    return this.slot.upcoming;
  }

  get desired(): number {
    return this.slot.current?.value.desired ?? this.options.workers;
  }

  get currentPort(): number {
    return this.slot.current?.value.port ?? this.options.port;
  }

  /** Boot the first generation; rejects with the first worker's failure. */
  async start(): Promise<void> {
    await this.slot.replace({});
    const checkMs = Math.max(50, Math.min(1000, Math.floor(this.options.heartbeatTimeoutMs / 4)));
    this.watchdog = setInterval(() => this.checkHeartbeats(), checkMs);
    this.watchdog.unref();
  }

  /**
   * Zero-downtime reload: resolves once the new generation serves and the old
   * one is out of the round-robin. With changes (a config that needs new
   * processes, a new port or count) the new generation starts with them; if
   * it fails, nothing changes.
   */
  async reload(change: PoolChange = {}): Promise<ReloadOutcome> {
    if (this.stopping) throw new GraftError('GRAFT_STOPPING', 'the master is stopping; reload refused');
    return (await this.slot.replace(change)).result;
  }

  /** Ready workers of the live generation: the ones a config change must reach. */
  liveWorkers(): WorkerProcess[] {
    return [...(this.slot.current?.value.workers ?? [])].filter((w) => w.state === 'ready' && !w.retiring);
  }

  /** Every worker the master knows, in any state. */
  allWorkers(): WorkerProcess[] {
    return [...this.known];
  }

  /**
   * The live set's workers now run this snapshot (a config change applied in
   * place): workers forked for the set from now on start on it.
   */
  configCommitted(config: ConfigPayload): void {
    const live = this.slot.current?.value;
    if (live) live.config = config;
  }

  /**
   * Start a fresh worker in w's place (on its set's config), wait for it, then
   * retire w. `why` is the sentence logged; `cause` the word counted.
   */
  replace(w: WorkerProcess, why: string, cause: RestartReason): Promise<void> {
    return this.slot.amend(async (live) => {
      const set = live.value;
      if (!set.workers.has(w) || this.stopping) return;
      this.log.warn('replacing worker', { generation: set.generation, worker: w.index, workerPid: w.pid, reason: why, cause });
      this.observe({ type: 'worker-restart', reason: cause, generation: set.generation, worker: w.index, workerPid: w.pid });
      set.workers.delete(w);
      const fresh = this.fork(set, w.index, w.restarts + 1);
      await fresh.ready.catch(() => {});
      await this.retireWorker(w);
    });
  }

  /** A lost worker's replacement, once its backoff is over; nothing if a reload or scale made it moot, or its generation used up --max-restarts. */
  replaceLost(lost: LostWorker): Promise<{ replaced: boolean; workerPid?: number }> {
    return this.slot.amend(async (live) => {
      const set = live.value;
      const taken = [...set.workers].some((w) => !w.retiring && w.index === lost.index);
      if (this.stopping || set.generation !== lost.generation || taken || set.record.exhausted || this.activeCount(set) >= set.desired) return { replaced: false };
      const fresh = this.fork(set, lost.index, lost.restarts);
      // A replacement that fails to boot is lost in turn: its exit asks for the next one, after backoff.
      await fresh.ready.catch(() => {});
      return { replaced: true, workerPid: fresh.pid };
    });
  }

  /**
   * --max-memory: a fresh worker of the same generation takes the place of
   * the one over the limit, and only once it is ready does the old one drain
   * (no request cut). If the fresh one fails to start, nothing changes.
   * Answers once the old worker is out of the round-robin; it drains on.
   */
  replaceOverMemory(ask: MemoryAsk): Promise<{ replaced: boolean; workerPid?: number }> {
    return this.slot.amend(async (live) => {
      const set = live.value;
      const w = [...set.workers].find((x) => x.pid === ask.pid);
      if (this.stopping || set.generation !== ask.generation || !w || w.retiring || !w.alive) return { replaced: false };
      set.workers.delete(w);
      const fresh = this.fork(set, w.index, w.restarts + 1);
      try {
        await fresh.ready;
      } catch (err) {
        // Reported here, once: not a crash of the generation to replace or count against --max-restarts.
        set.workers.delete(fresh);
        fresh.kill();
        if (w.alive) set.workers.add(w);
        // Fresh workers do not start (the code on disk changed?): trying again at every heartbeat would only spin.
        const retryInMs = set.record.memoryReplacementFailed(w);
        this.log.error('the replacement of a worker over --max-memory failed to start; the worker keeps serving', {
          generation: set.generation,
          worker: w.index,
          workerPid: w.pid,
          retryInMs,
          ...errorFields(err),
        });
        return { replaced: false };
      }
      set.record.memoryReplaced();
      this.observe({ type: 'worker-restart', reason: 'memory', generation: set.generation, worker: w.index, workerPid: w.pid });
      this.log.info('worker over --max-memory replaced; draining it', {
        generation: set.generation,
        worker: w.index,
        workerPid: w.pid,
        replacementPid: fresh.pid,
        rss: w.stats.rss,
        limit: this.options.policy.maxMemoryBytes,
      });
      const retired = this.retireWorker(w);
      await w.closed;
      void retired; // the drain goes on outside this amend: the next command need not wait for its last request
      return { replaced: true, workerPid: fresh.pid };
    });
  }

  /** The live generation's workers swapped code in place: its version is now that of the files they swapped in (read in the same command). */
  async codeSwapped(): Promise<void> {
    const live = this.slot.current?.value;
    if (live) live.codeVersion = (await this.scan.version()) ?? live.codeVersion;
  }

  /** Change the live generation's worker count (and so every later one's). */
  scale(count: number): Promise<{ from: number; to: number }> {
    if (!Number.isInteger(count) || count < 1) {
      return Promise.reject(new GraftError('GRAFT_BAD_ARGUMENT', `worker count must be a whole number of at least 1, got ${count}`));
    }
    if (this.stopping) return Promise.reject(new GraftError('GRAFT_STOPPING', 'the master is stopping; scale refused'));
    return this.slot.amend(async (live) => {
      const set = live.value;
      const from = set.desired;
      set.desired = count;
      const active = [...set.workers].filter((w) => !w.retiring);
      if (active.length > count) {
        const surplus = active.sort((a, b) => b.index - a.index).slice(0, active.length - count);
        for (const w of surplus) set.workers.delete(w);
        this.log.info('scaling down', { generation: set.generation, from, to: count, pids: surplus.map((w) => w.pid) });
        await Promise.all(surplus.map((w) => this.retireWorker(w)));
      } else if (active.length < count) {
        this.log.info('scaling up', { generation: set.generation, from, to: count });
        await this.topUp(set);
      }
      return { from, to: count };
    });
  }

  /** Graceful: drain every worker. Fast: kill them. */
  async stop(fast: boolean): Promise<void> {
    this.stopping = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const t of this.replacements) clearTimeout(t);
    this.replacements.clear();
    if (fast) {
      void this.slot.close(); // nothing queued may start workers now
      for (const w of this.known) w.kill();
    } else {
      await this.slot.close();
    }
    await Promise.all([...this.known].map((w) => w.exited));
    await this.options.builds?.close();
    await this.scan.close();
  }

  /** Kill every worker now (a fast stop after a graceful one began). */
  killAll(): void {
    for (const w of this.known) w.kill();
  }

  status(): PoolStatus {
    const live = this.slot.current?.value;
    return {
      generation: this.slot.current?.version,
      release: live?.release?.id,
      code: live?.codeVersion,
      desired: this.desired,
      actual: live ? this.activeCount(live) : 0,
      reloading: this.slot.replacing,
      crashLoop: this.restarts.inCrashLoop(),
      degraded: live?.record.degraded() ?? [],
      workers: [...this.known].map((w) => w.status()).sort((a, b) => a.generation - b.generation || a.index - b.index),
    };
  }

  private async buildSet(ctx: BuildContext<WorkerSet, PoolChange>): Promise<WorkerSet> {
    const change = ctx.request ?? {};
    const release = change.release !== undefined ? (change.release ?? undefined) : ctx.previous ? ctx.previous.release : this.options.releases?.first;
    // New code on disk is a new build; code that does not compile refuses the generation before any worker starts.
    // A release is built once and kept.
    const built = await unlessAborted(
      ctx.signal,
      release && this.options.releases ? this.options.releases.code(release) : (this.options.builds?.build(ctx.version) ?? Promise.resolve(undefined)),
    );
    // An entry the pool does not build is scanned while its workers load it.
    const scanned = built ? undefined : this.scan.version();
    const set: WorkerSet = {
      generation: ctx.version,
      workers: new Set(),
      code: built?.file,
      release,
      codeVersion: built?.version,
      port: change.port ?? ctx.previous?.port ?? this.options.port,
      config: change.config ?? this.options.config(),
      desired: change.workers ?? ctx.previous?.desired ?? this.options.workers,
      record: this.restarts.generation(ctx.version),
    };
    this.log.info('reload: forking workers', { generation: set.generation, workers: set.desired, port: set.port });
    for (let index = 0; index < set.desired; index++) this.fork(set, index, 0);
    try {
      await unlessAborted(ctx.signal, Promise.all([...set.workers].map((w) => w.ready)));
    } catch (err) {
      // Roll back: the live generation keeps serving; the new one goes away.
      await Promise.all([...set.workers].map((w) => this.retireWorker(w)));
      this.options.builds?.remove(set.generation);
      throw err;
    }
    if (scanned) set.codeVersion = await scanned;
    return set;
  }

  /** A worker that died between its ready and the commit leaves the set short: not a generation to commit. */
  private verifySet(set: WorkerSet): void {
    const lost = set.desired - this.activeCount(set);
    if (lost > 0) throw new GraftError('GRAFT_WORKER_EXITED', `${lost} worker(s) of generation ${set.generation} exited right after becoming ready; the live generation keeps serving`);
  }

  /** Still part of the reload, after the new set went live and the old one began draining. */
  private async commitSet(set: WorkerSet, previous: WorkerSet | undefined): Promise<ReloadOutcome> {
    // A worker of the new set that died between ready and commit was not live, so nobody replaced it.
    // The new set serves already: a failure here is logged, and crash replacement goes on from it.
    await this.topUp(set).catch((err: unknown) =>
      this.log.error('reload: a worker of the new generation failed to start after the commit', { generation: set.generation, ...errorFields(err) }),
    );
    // Answer only once the old generation is out of the round-robin: a client that
    // connects after this reaches the new code. A worker that never confirms is
    // killed at the drain timeout, and `closed` resolves when it exits.
    if (previous) await Promise.all([...previous.workers].map((w) => w.closed));
    return { generation: set.generation, previous: previous?.generation };
  }

  /**
   * --ready auto guesses a job worker from an entry that does not listen; once
   * a worker of the service has listened, its next generations and their
   * replacements must listen too, so a new version that never listens fails
   * its reload instead of passing for a job worker; while job workers serve,
   * the next generation is ready as soon as its entry has evaluated.
   */
  private readyMode(set: WorkerSet): ReadyMode {
    if (this.options.ready !== 'auto') return this.options.ready;
    const live = this.slot.current?.value;
    if ([...set.workers, ...(live?.workers ?? [])].some((w) => w.address)) return 'listen';
    // The live generation serves as job workers (ready, never listened): the next one is ready once its
    // entry has evaluated, without auto's 1 s wait for a listen() that does not come.
    return live && [...live.workers].some((w) => w.state === 'ready') ? 'load' : 'auto';
  }

  private fork(set: WorkerSet, index: number, restarts: number): WorkerProcess {
    const heartbeatMs = Math.max(20, Math.min(1000, Math.floor(this.options.heartbeatTimeoutMs / 4)));
    const ready = this.readyMode(set);
    const entry = set.release?.entry ?? this.options.entry;
    // A release's workers run in its directory, so files the app reads by relative path are the release's too.
    const env: Record<string, string> = {
      PORT: String(set.port),
      [WorkerEnv.entry]: entry,
      ...(set.code ? { [WorkerEnv.code]: set.code } : {}),
      [WorkerEnv.generation]: String(set.generation),
      [WorkerEnv.service]: this.options.service,
      [WorkerEnv.index]: String(index),
      [WorkerEnv.heartbeatMs]: String(heartbeatMs),
      [WorkerEnv.idleCloseMs]: String(this.options.idleCloseMs),
      [WorkerEnv.lingerMs]: String(this.options.lingerMs),
      [WorkerEnv.drainTimeoutMs]: String(this.options.drainTimeoutMs),
      ...(this.options.swap ? { [WorkerEnv.swap]: '1' } : {}),
      [WorkerEnv.ready]: ready,
      ...WORKER_LOG_ENV,
      ...(this.options.metrics ? { [WorkerEnv.metrics]: '1' } : {}),
    };
    // A warm worker a standby started ahead of need (warm-workers.ts), if one waits: told what a fork would have been given.
    // Not with tsx in the workers for a release's directory: tsx settled its tsconfig where the warm worker started.
    const warm = this.options.tsx && set.release ? undefined : takeWarmWorker();
    if (warm) warm.send({ graft: 'warm-start', env, ...(set.release ? { cwd: set.release.dir } : {}) } satisfies MasterMessage);
    else cluster.setupPrimary({ cwd: set.release?.dir });
    const worker = warm ?? cluster.fork(env);
    const wp = new WorkerProcess(worker, set.generation, index, restarts, this.options.readyTimeoutMs, entry, ready);
    this.options.output.attach({ generation: set.generation, index, pid: wp.pid }, worker.process.stdout, worker.process.stderr);
    this.known.add(wp);
    set.workers.add(wp);
    // The snapshot answers the worker's hello: it waits for it before loading the app.
    wp.onHello = () => worker.send({ graft: 'config-init', config: set.config });
    if (this.restarts.watchesMemory) wp.onHeartbeat = () => this.watchMemory(wp, set);
    this.log.info('worker started', { generation: set.generation, worker: index, workerPid: wp.pid, restarts, ...(warm ? { warm: true } : {}) });
    wp.ready.then(
      () => this.log.info('worker ready', { generation: set.generation, worker: index, workerPid: wp.pid, bootMs: Date.now() - wp.startedAt, configVersion: wp.stats.configVersion }),
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
    const fields = { generation: wp.generation, worker: wp.index, workerPid: wp.pid, exitCode: code, signal, served: wp.stats.served };
    if (expected) {
      this.log.info('worker exited', fields);
      return;
    }
    const diedAt = Date.now();
    const how = wp.bootError?.message ?? `${signal ? `signal ${signal}` : `exit code ${code}`}${wp.readyAt === undefined ? ' before it was ready' : ''}`;
    const crash = this.restarts.crashed(set.record, wp.readyAt === undefined ? undefined : diedAt - wp.readyAt, how, diedAt);
    const cause = wp.bootError ? { code: wp.bootError.code, error: wp.bootError.message } : {};
    if (!crash.replace) {
      if (crash.exhaustedNow) {
        // The master keeps running and serving with the workers it has; a reload (a new generation) starts afresh.
        this.log.error('--max-restarts used up: crashed workers of this generation are no longer replaced; fix the app and run graft reload', {
          code: 'GRAFT_MAX_RESTARTS',
          ...fields,
          maxRestarts: this.options.policy.maxRestarts,
          minUptimeMs: this.options.policy.minUptimeMs,
          workersLeft: this.activeCount(set),
          lastError: how,
          error: set.record.exhausted!.message,
        });
      } else {
        this.log.warn('worker died; not replaced: its generation used up --max-restarts', { ...fields, ...cause, workersLeft: this.activeCount(set) });
      }
      return;
    }
    const { delayMs, loopStarted, recent } = crash;
    const reason = wp.killedFor ?? 'crash';
    // What it held, as of its last heartbeat: the requests and connections its death cut.
    const held = { inFlight: wp.stats.inFlight, openConnections: wp.stats.connections };
    this.log.warn('worker died; replacing it', { ...fields, ...held, cause: reason, delayMs, unstable: crash.unstable, crashesLastMinute: recent, ...cause });
    this.observe({ type: 'worker-restart', reason, generation: set.generation, worker: wp.index, workerPid: wp.pid });
    if (loopStarted) {
      this.log.error('workers are crash-looping; replacements are throttled', {
        code: 'GRAFT_CRASH_LOOP',
        generation: set.generation,
        crashesLastMinute: recent,
        lastError: wp.bootError?.message,
      });
    }
    this.after(diedAt + delayMs, () => this.options.onWorkerLost({ generation: set.generation, index: wp.index, restarts: wp.restarts + 1 }));
  }

  /**
   * Run `then` once the clock reads `at` or later, unless the pool stops first.
   * Re-armed if a timer fires early (libuv measures from its cached loop
   * time), so that a --restart-delay is never cut short.
   */
  private after(at: number, then: () => void): void {
    const timer = setTimeout(() => {
      this.replacements.delete(timer);
      if (this.stopping) return;
      if (Date.now() < at) this.after(at, then);
      else then();
    }, Math.max(0, at - Date.now()));
    this.replacements.add(timer);
  }

  /** After each heartbeat of a live worker: one that stays over --max-memory is replaced through the arbiter (backing off if fresh ones keep going over right away). */
  private watchMemory(wp: WorkerProcess, set: WorkerSet): void {
    if (this.stopping || wp.state !== 'ready' || wp.retiring || this.slot.current?.value !== set || !set.workers.has(wp)) return;
    const rss = wp.stats.rss;
    const over = set.record.memoryBeat(wp, rss, Date.now() - (wp.readyAt ?? wp.startedAt));
    if (!over) return;
    const { delayMs, churnStarted } = over;
    const fields = { code: 'GRAFT_WORKER_MEMORY' as const, generation: set.generation, worker: wp.index, workerPid: wp.pid, rss, limit: this.options.policy.maxMemoryBytes };
    if (churnStarted) {
      this.log.error('fresh workers keep going over --max-memory right away: replacements back off; raise --max-memory or find what the app holds', {
        ...fields,
        error: churnStarted.message,
      });
    }
    this.log.warn('worker over --max-memory; replacing it once a fresh one is ready', { ...fields, delayMs });
    this.observe({ type: 'worker-over-memory', generation: set.generation, worker: wp.index, workerPid: wp.pid, rss });
    this.after(Date.now() + delayMs, () => {
      this.options
        .onWorkerOverMemory({ generation: set.generation, index: wp.index, pid: wp.pid, rss })
        .catch(() => {})
        .finally(() => set.record.memorySettled(wp));
    });
  }

  private activeCount(set: WorkerSet): number {
    return [...set.workers].filter((w) => !w.retiring && w.alive).length;
  }

  /** Start workers until the set has its desired count; waits for them and rejects with the first one's failure. */
  private async topUp(set: WorkerSet): Promise<void> {
    if (this.stopping) return;
    const started: WorkerProcess[] = [];
    const used = new Set([...set.workers].filter((w) => !w.retiring).map((w) => w.index));
    for (let index = 0; this.activeCount(set) < set.desired; index++) {
      if (used.has(index)) continue;
      started.push(this.fork(set, index, 0));
    }
    const results = await Promise.allSettled(started.map((w) => w.ready));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async retireSet(set: WorkerSet, deadline: AbortSignal): Promise<void> {
    await Promise.all([...set.workers].map((w) => this.retireWorker(w, deadline)));
  }

  /** Drain one worker; killed at the drain timeout (a set's deadline, or its own). */
  private async retireWorker(w: WorkerProcess, deadline = AbortSignal.timeout(this.options.drainTimeoutMs)): Promise<void> {
    const killed = await w.retire(deadline, { idleCloseMs: this.options.idleCloseMs, lingerMs: this.options.lingerMs });
    if (killed) {
      this.log.warn('worker killed after the graceful timeout', {
        code: 'GRAFT_DRAIN_TIMEOUT',
        generation: w.generation,
        worker: w.index,
        workerPid: w.pid,
        drainTimeoutMs: this.options.drainTimeoutMs,
        inFlight: w.stats.inFlight,
      });
    }
  }

  private checkHeartbeats(): void {
    const now = Date.now();
    for (const w of this.known) {
      if (w.state !== 'ready' && w.state !== 'draining') continue;
      const silentMs = now - w.lastHeartbeat;
      if (silentMs <= this.options.heartbeatTimeoutMs) continue;
      this.log.error('worker event loop blocked; killing it', {
        code: 'GRAFT_WORKER_BLOCKED',
        generation: w.generation,
        worker: w.index,
        workerPid: w.pid,
        silentMs,
        heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
      });
      w.lastHeartbeat = now;
      w.killedFor = 'heartbeat';
      w.kill();
    }
  }
}
