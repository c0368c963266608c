import { dirname } from 'node:path';
import type { BusOptions, BusTriggers } from '../bus/bus-triggers.js';
import type { BusStatus } from '../bus/bus-link.js';
import { ConfigLoader } from '../config/loader.js';
import { EnvSource } from '../config/sources/env-source.js';
import { FileSource } from '../config/sources/file-source.js';
import { OverrideSource } from '../config/sources/override-source.js';
import type { SourceStatus } from '../config/sources/source.js';
import type { ConfigArg } from '../config/sources/source-url.js';
import { createStoreSource, storeOptions } from '../config/sources/stores.js';
import { deferred } from '../core/deferred.js';
import { GraftError, errorFields } from '../errors.js';
import type { FleetAddress } from '../fleet/fleet-url.js';
import type { Membership } from '../fleet/membership.js';
import { registryKey, type HostRecord } from '../fleet/registration.js';
import { createLogger } from '../log.js';
import { Arbiter } from './arbiter.js';
import { CodeSwapper } from './code-swapper.js';
import { CodeWatcher } from './code-watcher.js';
import { mergeCommands, type Command, type Overrides } from './commands.js';
import { ConfigCoordinator, type ApplyOutcome, type HistoryEntry } from './config-coordinator.js';
import { controlHandler } from './control-handlers.js';
import { ControlServer } from './control-server.js';
import { EntryBuilds, isTypeScript } from './entry-builds.js';
import { ListenerRegistry } from './listeners.js';
import { MasterFiles } from './master-files.js';
import type { MasterPaths } from './paths.js';
import { Reloads, type ReloadRecord } from './reloads.js';
import { installSignals } from './signals.js';
import { Succession } from './succession.js';
import { awaitHandover, reportInControl, reportUpgradeFailed, takeUpgradeState, type UpgradeState } from './upgrade.js';
import { WorkerPool, type PoolStatus } from './worker-pool.js';

export interface MasterOptions {
  entry: string;
  cwd: string;
  workers: number;
  port: number;
  paths: MasterPaths;
  /** How long a new worker may take to become ready; also how long a ready one may go without a heartbeat (--timeout). */
  readyTimeoutMs: number;
  /** How long a retired worker may drain before it is killed (--graceful-timeout). */
  drainTimeoutMs: number;
  /** A draining worker closes a keep-alive connection idle this long. */
  idleCloseMs: number;
  /** How long a closing connection keeps reading before it is released. */
  lingerMs: number;
  watch: string | undefined;
  /** Serve the entry as a swappable handler; code changes swap in place. */
  swap: boolean;
  /** Load a TypeScript entry with tsx in every worker instead of compiling it in the master (--tsx). */
  tsx: boolean;
  /** Config files and stores (--config), lowest layer first. */
  config: ConfigArg[];
  /** Where store sources cache their last good snapshot (default: beside the control socket). */
  configCache: string | undefined;
  /** `--set key.path=value` overrides from the command line. */
  overrides: string[];
  /** Set when -w / -p were given: the config's graft.workers / graft.port do not apply. */
  fixed: { port: boolean; workers: boolean };
  /** The service's name (`--name`): every master of a fleet runs the same one. */
  service: string;
  /** This master's name in the fleet (`--host-id`). */
  hostId: string;
  /** Register in this fleet store (`--fleet`). */
  fleet: FleetAddress | undefined;
  /** Take signed orders from NATS and/or RabbitMQ (--bus). */
  bus?: BusOptions | undefined;
}

export interface MasterStatus {
  master: {
    pid: number;
    uptimeMs: number;
    /** The master process's own memory: resident set and V8 heap, in bytes. */
    memory: { rss: number; heapUsed: number; heapTotal: number };
    entry: string;
    port: number;
    socket: string;
    state: MasterState;
    /** This master's place in its line of upgrades (1 for a master started by hand). */
    masterGeneration: number | undefined;
    /** The command the arbiter carries out now, and how many wait. */
    busy: string | undefined;
    queued: number;
    lastReload: ReloadRecord | undefined;
    config: { version: number; hash: string; source: string; lastRejected: HistoryEntry | undefined; stores: SourceStatus[] } | undefined;
    /** The buses this master takes orders from (--bus), and whether each is connected. */
    bus?: BusStatus[];
    /** The fleet registry this master registers in (--fleet), and whether its entry is written. */
    fleet?: { fleet: string; key: string; registered: boolean };
  } & Omit<PoolStatus, 'workers'>;
  workers: PoolStatus['workers'];
}

type MasterState = 'starting' | 'running' | 'stopping';

/** How many recent bus order ids a master remembers as carried out, and config orders it can undo. */
const ORDERS_KEPT = 50;

/** How long a worker may take to validate or apply a config version, or to swap code. */
const WORKER_REQUEST_TIMEOUT_MS = 15_000;

/**
 * The arbiter: owns the listening sockets (through node:cluster), the control
 * socket and the pidfile, and runs no application code. Every change to the
 * running service, whoever asks for it, is a command carried out by one loop,
 * one at a time; a stop preempts.
 */
export class Master {
  private readonly log = createLogger({ role: 'master' });
  private readonly startedAt = Date.now();
  private readonly control: ControlServer;
  private readonly files: MasterFiles;
  private readonly applyOverrides = new OverrideSource('apply');
  private readonly arbiter = new Arbiter<Command>({ handle: (c) => this.handle(c), merge: mergeCommands, preempts: (c) => c.kind === 'stop' });
  private listeners!: ListenerRegistry;
  private coordinator: ConfigCoordinator | undefined;
  private pool: WorkerPool | undefined;
  private reloads: Reloads | undefined;
  private swapper: CodeSwapper | undefined;
  private succession: Succession | undefined;
  private watcher: CodeWatcher | undefined;
  private membership: Membership | undefined;
  /** Ids of the bus orders carried out lately (the fleet registry shows them: a rollout's proof that a host did it). */
  private readonly carriedOut: string[] = [];
  /** The override layer as it was before each recent config order changed it, by order id. */
  private readonly undoable = new Map<string, Record<string, unknown>>();
  private bus: BusTriggers | undefined;
  private state: MasterState = 'starting';
  private stopping: Promise<void> | undefined;
  private fastStop = false;
  private successorPid: number | undefined;
  private uninstallSignals: (() => void) | undefined;
  private readonly exit = deferred<number>();
  private exitCode = 0;

  constructor(private readonly options: MasterOptions) {
    MasterFiles.check(options.paths.socket);
    this.control = new ControlServer(options.paths.socket, controlHandler(this), this.log);
    this.files = new MasterFiles(options.paths, this.control, { cwd: options.cwd, entry: options.entry });
  }

  get config(): ConfigCoordinator {
    if (!this.coordinator) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'the master has not loaded its config yet');
    return this.coordinator;
  }

  /** Run until stopped; resolves with the process exit code. Rejects if the service cannot start. */
  async run(): Promise<number> {
    let inherited: UpgradeState | undefined;
    try {
      inherited = await takeUpgradeState();
      await this.start(inherited);
    } catch (err) {
      if (this.stopping) return this.exit.promise; // a stop arrived while starting
      const error = GraftError.wrap(err, 'the master failed to start');
      await this.pool?.stop(true);
      await this.coordinator?.close();
      await reportUpgradeFailed(error);
      this.files.release();
      this.uninstallSignals?.();
      throw error;
    }
    return this.exit.promise;
  }

  private async start(inherited: UpgradeState | undefined): Promise<void> {
    // What `ps` shows: which service this master runs.
    process.title = `graft master ${this.options.service}`;
    this.listeners = new ListenerRegistry(inherited?.listeners);
    this.listeners.install();
    if (inherited) this.applyOverrides.restore(inherited.overrides);
    const stores = storeOptions(this.log, this.options.configCache ?? dirname(this.options.paths.socket));
    const layers = await Promise.all(this.options.config.map((c) => (c.kind === 'file' ? new FileSource(c.path) : createStoreSource(c.address, stores))));
    const loader = new ConfigLoader([
      ...layers,
      new EnvSource(),
      new OverrideSource('cli', this.options.overrides),
      this.applyOverrides,
    ]);
    const coordinator = new ConfigCoordinator(loader, this.log, {
      workerTimeoutMs: WORKER_REQUEST_TIMEOUT_MS,
      fixed: this.options.fixed,
      reload: (reason, change) => this.reloads!.run(reason, change),
    });
    this.coordinator = coordinator;
    const own = coordinator.settings(await coordinator.init(inherited?.config));
    // A --swap handler is bundled by the worker itself; --tsx keeps TypeScript to tsx in each worker.
    const typescript = isTypeScript(this.options.entry);
    const builds = typescript && !this.options.swap && !this.options.tsx ? new EntryBuilds(this.options.entry, this.options.paths.build, this.log) : undefined;
    const pool = new WorkerPool(
      {
        entry: this.options.entry,
        service: this.options.service,
        workers: inherited?.workers ?? own.workers ?? this.options.workers,
        port: own.port ?? this.options.port,
        readyTimeoutMs: this.options.readyTimeoutMs,
        heartbeatTimeoutMs: this.options.readyTimeoutMs,
        drainTimeoutMs: this.options.drainTimeoutMs,
        idleCloseMs: this.options.idleCloseMs,
        lingerMs: this.options.lingerMs,
        firstGeneration: inherited?.firstGeneration ?? 1,
        swap: this.options.swap,
        tsx: typescript && this.options.tsx,
        builds,
        config: () => coordinator.current,
        onWorkerLost: (lost) => this.submitQuietly({ kind: 'replace-worker', ...lost }),
      },
      this.log,
    );
    this.pool = pool;
    coordinator.attach(pool);
    this.reloads = new Reloads(pool, this.log);
    this.swapper = new CodeSwapper(pool, (reason) => this.reloads!.run(reason), this.log, WORKER_REQUEST_TIMEOUT_MS);
    this.succession = new Succession(
      {
        handover: () => ({
          listeners: this.listeners.list(),
          state: {
            workers: pool.desired,
            firstGeneration: pool.nextGeneration,
            config: coordinator.inheritance(),
            overrides: this.applyOverrides.save(),
            orders: this.bus?.remembered() ?? [],
          },
        }),
        transferControl: async (successor) => {
          this.files.handOff();
          try {
            await successor.handOver();
          } catch (err) {
            await this.files.takeBack();
            throw err;
          }
        },
        stepDown: (successor) => this.stepDown(successor),
        shutdown: () => this.shutdown(),
        readyTimeoutMs: this.options.readyTimeoutMs * 2 + 5000,
        drainTimeoutMs: this.options.drainTimeoutMs,
      },
      this.log,
      inherited?.masterGeneration ?? 1,
    );
    void this.succession.retired.then(async () => {
      // Exit only after every control client (the `graft stop` waiting on us) has its answer.
      await this.control.settled();
      this.exit.resolve(this.exitCode);
    });
    if (!inherited) await this.files.take();
    this.uninstallSignals = installSignals((command, signal) => {
      this.log.info('signal received', { signal, command: command.kind });
      this.submitQuietly(command);
    });
    await pool.start();
    if (inherited) {
      await Promise.race([awaitHandover(), this.exit.promise]);
      if (this.stopping) return;
      await this.files.take(inherited.from);
      reportInControl();
      const closed = this.listeners.closeUnclaimed();
      this.log.info('upgrade: in control', { from: inherited.from, generation: pool.generation, configVersion: coordinator.current.version, closedListeners: closed });
    }
    if (this.stopping) return;
    this.state = 'running';
    coordinator.watch((source) => this.submitQuietly({ kind: 'config', source }));
    if (this.options.watch) await this.watchCode(this.options.watch);
    this.arbiter.open();
    if (this.options.fleet && !this.stopping) {
      // The fleet's NATS client loads only for a master started with --fleet.
      const { Membership } = await import('../fleet/membership.js');
      this.membership = new Membership(
        {
          address: this.options.fleet,
          key: registryKey(this.options.service, this.options.hostId),
          entry: this.options.entry,
          root: dirname(this.options.entry),
          record: () => this.hostRecord(),
        },
        this.log,
      );
      this.membership.start();
      if (!this.takesFleetOrders()) {
        this.log.warn('in the fleet registry but taking no orders on its server: graft fleet lists this master but cannot roll out to it', {
          code: 'GRAFT_FLEET_NO_ORDERS',
          fleet: this.options.fleet.display,
          hint: `add --bus ${this.options.fleet.display} --bus-key FILE`,
        });
      }
    }
    if (this.options.bus) await this.listenForOrders({ ...this.options.bus, ...(inherited?.orders ? { seen: inherited.orders } : {}) });
    // Sources may have changed while the masters handed over; unchanged content makes no version.
    if (inherited) this.submitQuietly({ kind: 'config', source: 'upgrade' });
    this.log.info('master running', {
      generation: pool.generation,
      workers: pool.desired,
      port: pool.currentPort,
      configVersion: coordinator.current.version,
      masterGeneration: this.succession.generation,
      entry: this.options.entry,
      socket: this.options.paths.socket,
    });
  }

  submit(command: Command): Promise<unknown> {
    return this.arbiter.submit(command);
  }

  /** For commands nobody waits on (signals, watchers, lost workers): each handler logs its own failure. */
  private submitQuietly(command: Command): void {
    this.arbiter.submit(command).catch((err: unknown) => this.log.debug('command not carried out', { command: command.kind, ...errorFields(err) }));
  }

  private async handle(command: Command): Promise<unknown> {
    let done = false;
    try {
      const outcome = await this.carryOut(command);
      done = true;
      return outcome;
    } finally {
      const orders = 'orders' in command ? (command.orders ?? []) : [];
      this.carriedOut.push(...orders);
      this.carriedOut.splice(0, Math.max(0, this.carriedOut.length - ORDERS_KEPT));
      // After the arbiter has let go of this command (so the entry says not busy); a failed reload or swap left the code as it was.
      const codeChanged = done && (command.kind === 'reload' || command.kind === 'swap');
      setImmediate(() => this.membership?.changed(codeChanged));
    }
  }

  private async carryOut(command: Command): Promise<unknown> {
    if (command.kind === 'stop') return this.stop(command.fast);
    if (this.state !== 'running') {
      const why = this.successorPid ? `handed over to master ${this.successorPid}; send it again` : `the master is ${this.state}`;
      throw new GraftError('GRAFT_STOPPING', `${why}; ${command.kind} refused`);
    }
    const pool = this.pool!;
    switch (command.kind) {
      case 'reload':
        return this.reloads!.run(command.reason, {}, command.files);
      case 'scale': {
        const target = command.workers ?? pool.desired + (command.delta ?? 0);
        if (command.workers === undefined && target < 1) {
          this.log.warn('scale-down ignored: a pool keeps at least one worker', { workers: pool.desired });
          return { from: pool.desired, to: pool.desired };
        }
        return pool.scale(target).catch((err: unknown) => {
          this.log.error('scale failed', { workers: target, ...errorFields(err) });
          throw err;
        });
      }
      case 'config':
        return this.applyConfig(command.source, command.overrides, command.orders?.[0]);
      case 'swap':
        return this.swapper!.swap(command.order);
      case 'upgrade':
        return this.succession!.upgrade().catch((err: unknown) => {
          const fields = errorFields(err);
          if (fields.code === 'GRAFT_STOPPING') this.log.info('upgrade abandoned: the master is stopping');
          else this.log.error('upgrade failed; this master keeps serving', fields);
          throw err;
        });
      case 'replace-worker':
        return pool.replaceLost(command);
    }
  }

  /**
   * With overrides from a bus order, what the top layer held before is kept
   * under the order's id, so that a fleet rollback can ask for it back (`undo`)
   * without the layer ever crossing the network.
   */
  private async applyConfig(source: string, overrides: Overrides | undefined, order: string | undefined): Promise<ApplyOutcome> {
    const coordinator = this.coordinator!;
    if (!overrides) return coordinator.change(source);
    // Overrides stay the top layer until unset: a file edit to the same key does not win over them.
    const saved = this.applyOverrides.save();
    try {
      if (overrides.undo !== undefined) {
        const before = this.undoable.get(overrides.undo);
        if (!before) throw new GraftError('GRAFT_BAD_ARGUMENT', `nothing to undo: order ${overrides.undo} did not change this master's config overrides (or is more than ${ORDERS_KEPT} orders old)`);
        this.applyOverrides.restore(before);
      }
      if (overrides.reset) this.applyOverrides.clear();
      if (overrides.unset?.length) this.applyOverrides.unset(overrides.unset);
      if (overrides.set?.length) this.applyOverrides.set(overrides.set);
      const outcome = await coordinator.change(source);
      if (overrides.undo !== undefined) this.undoable.delete(overrides.undo);
      else if (order !== undefined) {
        this.undoable.set(order, saved);
        for (const id of this.undoable.keys()) if (this.undoable.size > ORDERS_KEPT) this.undoable.delete(id);
      }
      return outcome;
    } catch (err) {
      this.applyOverrides.restore(saved); // a rejected override must not linger in the top layer
      throw err;
    }
  }

  status(): MasterStatus {
    const { workers, ...pool } = this.pool?.status() ?? { generation: undefined, desired: this.options.workers, actual: 0, reloading: false, crashLoop: false, workers: [] };
    const live = this.coordinator && this.state !== 'starting' ? this.coordinator.current : undefined;
    const { rss, heapUsed, heapTotal } = process.memoryUsage();
    return {
      master: {
        pid: process.pid,
        uptimeMs: Date.now() - this.startedAt,
        memory: { rss, heapUsed, heapTotal },
        entry: this.options.entry,
        port: this.pool?.currentPort ?? this.options.port,
        socket: this.options.paths.socket,
        state: this.state,
        masterGeneration: this.succession?.generation,
        busy: this.arbiter.current?.kind,
        queued: this.arbiter.waiting,
        lastReload: this.reloads?.last,
        config: live ? { version: live.version, hash: live.hash, source: live.source, lastRejected: this.coordinator!.lastRejected, stores: this.coordinator!.sourceStatus() } : undefined,
        ...(this.bus ? { bus: this.bus.status() } : {}),
        ...(this.membership ? { fleet: this.membership.status() } : {}),
        ...pool,
      },
      workers,
    };
  }

  /** Whether `graft fleet` can reach this master: it takes orders on the fleet's own NATS server. */
  private takesFleetOrders(): boolean {
    const fleet = this.options.fleet;
    return fleet !== undefined && (this.options.bus?.urls.some((u) => u.transport === 'nats' && u.server === fleet.server) ?? false);
  }

  /** This master's entry in the fleet registry (its code version is added by the membership). */
  private hostRecord(): Omit<HostRecord, 'code'> {
    const { master, workers } = this.status();
    const ready = workers.filter((w) => w.state === 'ready' && w.generation === master.generation).length;
    return {
      service: this.options.service,
      host: this.options.hostId,
      pid: master.pid,
      port: master.port,
      state: master.state,
      ready: master.state === 'running' && !master.reloading && master.busy === undefined && ready >= master.desired,
      workers: { desired: master.desired, ready },
      generation: master.generation,
      config: master.config ? { version: master.config.version, hash: master.config.hash } : undefined,
      busy: master.busy,
      masterGeneration: master.masterGeneration,
      takesOrders: this.takesFleetOrders(),
      orders: [...this.carriedOut],
      startedAt: new Date(this.startedAt).toISOString(),
      at: new Date().toISOString(),
    };
  }

  /** Graceful: every worker drains; fast: they are killed. Resolves once this master has retired. */
  private stop(fast: boolean): Promise<void> {
    if (this.stopping) {
      if (fast && !this.fastStop) {
        this.fastStop = true;
        this.log.warn('fast stop: killing workers');
        this.pool?.killAll();
      }
      return this.stopping;
    }
    this.fastStop = fast;
    this.state = 'stopping';
    this.log.info(fast ? 'fast stop' : 'graceful stop', { generation: this.pool?.generation, upgrading: this.succession?.upgrading });
    const retired = this.succession
      ? this.succession.close() // an upgrade in flight is aborted: its successor stops too
      : this.shutdown().then(() => this.exit.resolve(this.exitCode));
    this.stopping = retired.catch((err: unknown) => {
      this.exitCode = 1;
      this.log.error('stop failed', errorFields(err));
    });
    return this.stopping;
  }

  /** The successor serves now: this master stops taking connections and commands. */
  private stepDown(successor: number): void {
    this.successorPid = successor;
    this.state = 'stopping';
    this.listeners.stopAccepting();
    // The successor opened its own connections to the config stores.
    void this.coordinator?.close();
    void this.membership?.close(false); // the successor owns this host's entry now
    void this.watcher?.close();
    void this.bus?.close(); // the successor opens its own connections
  }

  /** This master's retirement: drain (or kill) its workers and release what it holds. */
  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    await this.coordinator?.close();
    await this.watcher?.close();
    await this.bus?.close();
    await this.membership?.close(this.successorPid === undefined);
    await this.pool?.stop(this.fastStop);
    this.uninstallSignals?.();
    this.files.release();
    this.log.info('master stopped', { handedOver: this.successorPid !== undefined, successor: this.successorPid });
  }

  /** Bus orders go through the arbiter like every other command; a swap may name only a module the workers declared swappable. */
  private async listenForOrders(options: BusOptions): Promise<void> {
    // The bus clients load only for a master started with --bus.
    const { BusTriggers } = await import('../bus/bus-triggers.js');
    if (this.stopping || this.state !== 'running') return;
    this.bus = new BusTriggers(
      options,
      {
        submit: (command) => this.submit(command),
        swappableModules: () => [...new Set(this.pool!.liveWorkers().flatMap((w) => (w.stats.modules ?? []).map((m) => m.replace(/@[^@]*$/, ''))))],
      },
      this.log,
    );
    this.bus.start();
    this.log.info('listening for bus orders', { service: options.service, hostId: options.host, buses: options.urls.map((u) => u.display), keyAlg: options.key.alg });
  }

  private async watchCode(root: string): Promise<void> {
    this.watcher = new CodeWatcher(root, (files) => {
      // With --swap a change swaps in place (or falls back to a reload); otherwise it reloads the workers.
      this.submitQuietly(this.options.swap ? { kind: 'swap', order: { files, source: 'watch' } } : { kind: 'reload', reason: 'watch', files });
    });
    await this.watcher.start();
    this.log.info('watching for code changes', { root });
  }
}
