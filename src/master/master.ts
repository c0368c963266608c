import { getHeapStatistics } from 'node:v8';
import { dirname } from 'node:path';
import type { BusOptions, BusTriggers } from '../bus/bus-triggers.js';
import { ConfigLoader } from '../config/loader.js';
import { EnvSource } from '../config/sources/env-source.js';
import { FileSource } from '../config/sources/file-source.js';
import { OverrideSource } from '../config/sources/override-source.js';
import { createStoreSource, storeOptions } from '../config/sources/stores.js';
import { deferred } from '../core/deferred.js';
import { Queue } from '../core/queue.js';
import { GraftError, errorFields } from '../core/errors.js';
import type { Membership } from '../fleet/membership.js';
import { registryKey, type HostRecord } from '../fleet/registration.js';
import { createLogger } from '../core/log.js';
import { moduleName } from '../core/ipc.js';
import { ServiceLog } from '../logs/service-log.js';
import { Activity } from '../observe/activity.js';
import { CodeSwapper } from './code-swapper.js';
import { CodeWatcher } from './code-watcher.js';
import { mergeCommands, type Command, type Overrides } from '../control/commands.js';
import { ConfigCoordinator } from './config-coordinator.js';
import type { ApplyOutcome } from '../config/history.js';
import { controlHandler } from '../control/handlers.js';
import { ControlServer } from '../control/server.js';
import { stopCompiler } from '../swap/bundle.js';
import { EntryBuilds, isTypeScript, tsxInWorkers } from '../pool/entry-builds.js';
import { ListenerRegistry } from '../net/listeners.js';
import { relaySocketIoAdapter } from '../pool/socket-io-relay.js';
import { StickyRouter } from '../pool/sticky-router.js';
import { MasterFiles } from '../registry/master-files.js';
import { Observers } from '../observe/observers.js';
import { Reloads } from './reloads.js';
import { MasterHttp } from './master-http.js';
import type { MasterOptions } from './master-options.js';
import type { MasterState, MasterStatus } from './master-status.js';
import { CarriedOrders } from '../bus/carried-orders.js';
import { ensureNameFree } from '../registry/service-registry.js';
import { keeperPid, masterCommand, reportToKeeper, whenKeeperGone } from '../succession/keeper-link.js';
import { installSignals } from './signals.js';
import { Succession } from '../succession/succession.js';
import { CrashReadiness, takeRecovery, type Recovery, type SavedState } from '../succession/recovery.js';
import { awaitHandover, reportInControl, reportUpgradeFailed, takeUpgradeState, type UpgradeState } from '../succession/upgrade.js';
import { stopWarmWorkers } from '../pool/warm-workers.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { Deployments, releaseChangeUnderWay } from '../releases/deployments.js';
import { fetchRelease, serviceReleases } from '../releases/service-releases.js';
import { entryInRelease } from '../releases/release-store.js';


/**
 * How a master ends: stopped, handed over to a successor, or failed to
 * start. One teardown serves all three; these are the differences.
 */
interface Ending {
  /** Kill the workers instead of draining them (a fast stop; a failed start's never served). */
  fast: boolean;
  /** The master in control now: it accepts on the same sockets, serves the HTTP endpoints and owns this host's fleet entry. */
  successor?: number;
  /** Why the start failed: the keeper and a predecessor waiting on this master are told. */
  failed?: GraftError;
}

/** How long a worker may take to validate or apply a config version, or to swap code. */
const WORKER_REQUEST_TIMEOUT_MS = 15_000;

/**
 * The arbiter: owns the listening sockets (through node:cluster), the control
 * socket and the service's name, and runs no application code. Every change to the
 * running service, whoever asks for it, is a command carried out by one loop,
 * one at a time; a stop preempts.
 */
export class Master {
  private readonly log = createLogger({ role: 'master' });
  private readonly startedAt = Date.now();
  private readonly keeper = keeperPid();
  private readonly control: ControlServer;
  private readonly files: MasterFiles;
  private readonly output: ServiceLog;
  private readonly applyOverrides = new OverrideSource('apply');
  /** The master's one queue and one loop (Gunicorn's arbiter is the model): signals and control requests only submit a command and await its outcome. */
  private readonly arbiter = new Queue<Command>(
    {
      handle: (c) => this.handle(c),
      merge: (waiting, later) => {
        const merged = mergeCommands(waiting, later);
        if (merged) this.log.debug('command merged into the one waiting', { command: later.kind });
        return merged;
      },
      preempts: (c) => c.kind === 'stop',
      refused: () => new GraftError('GRAFT_STOPPING', 'the master is stopping; the command was not carried out'),
    },
    { open: false }, // commands asked for while the master starts wait until it runs
  );
  private listeners!: ListenerRegistry;
  private coordinator: ConfigCoordinator | undefined;
  private pool: WorkerPool | undefined;
  private reloads: Reloads | undefined;
  private swapper: CodeSwapper | undefined;
  private deployments: Deployments | undefined;
  /** Aborted when the master begins stopping (a health gate in flight gives up). */
  private readonly stopping = new AbortController();
  private succession: Succession | undefined;
  private watcher: CodeWatcher | undefined;
  private membership: Membership | undefined;
  private orders = new CarriedOrders();
  private bus: BusTriggers | undefined;
  /** Who is told what happens (reloads, replacements, config versions, swaps): metrics and the status page. */
  private readonly observers = new Observers(this.log);
  private activity = new Activity();
  /** The master's own HTTP servers (--metrics, --dashboard). */
  private readonly http: MasterHttp;
  private state: MasterState = 'starting';
  /** Set once, by whatever ends this master first (a later fast stop only hastens it). */
  private ending: Ending | undefined;
  /** The teardown, once begun; resolves with the exit code. */
  private tornDown: Promise<number> | undefined;
  private uninstallSignals: (() => void) | undefined;
  private readonly exit = deferred<number>();
  /** How many times the keeper restarted a crashed master of this service (carried through upgrades). */
  private restarts = 0;
  /** Under a keeper: its copies of the sockets and the state file a restart after a crash starts from. */
  private crashReadiness: CrashReadiness | undefined;

  constructor(private readonly options: MasterOptions) {
    MasterFiles.check(options.paths.socket);
    this.control = new ControlServer(options.paths.socket, controlHandler(this), this.log);
    this.files = new MasterFiles(options.paths, this.control, () => ({
      name: options.service,
      entry: options.entry,
      cwd: options.cwd,
      port: this.pool?.currentPort ?? options.port,
      logs: options.logs,
    }));
    this.output = new ServiceLog(options.logs);
    this.http = new MasterHttp({
      service: options.service,
      metrics: options.metrics,
      dashboard: options.dashboard,
      view: {
        workers: () => this.pool?.allWorkers() ?? [],
        configVersion: () => (this.state === 'starting' ? undefined : this.coordinator?.current.version),
        generation: () => this.pool?.generation,
        masterRestarts: () => this.restarts,
      },
      status: () => this.status(),
      history: () => this.coordinator?.recent() ?? [],
      activity: () => this.activity.snapshot(),
      observers: this.observers,
      log: this.log,
    });
  }

  get config(): ConfigCoordinator {
    if (!this.coordinator) throw new GraftError('GRAFT_CONFIG_NOT_READY', 'the master has not loaded its config yet');
    return this.coordinator;
  }

  /** Run until stopped; resolves with the process exit code. Rejects if the service cannot start. */
  async run(): Promise<number> {
    this.output.install();
    let failed: GraftError | undefined;
    try {
      const upgrade = await takeUpgradeState();
      await this.start(upgrade, upgrade ? undefined : takeRecovery(this.options.paths.state, this.options.takeover));
    } catch (err) {
      // A stop that arrived while starting ends this master as asked; otherwise the start failed.
      if (!this.ending) {
        failed = GraftError.wrap(err, 'the master failed to start');
        this.end({ fast: true, failed });
        void this.tearDown();
      }
    }
    const code = await this.exit.promise;
    // Last, once nothing can compile any more (a retired generation's build is disposed late).
    await stopCompiler();
    await this.output.close();
    if (failed) throw failed;
    return code;
  }

  /**
   * inherited: what a predecessor hands over in a planned upgrade. recovery: a
   * master the keeper started after the one in control crashed; it carries on
   * from that master's state file, on the sockets the keeper kept.
   */
  private async start(upgrade: UpgradeState | undefined, recovery: Recovery | undefined): Promise<void> {
    // What `ps` shows: which service this master runs.
    process.title = `graft master ${this.options.service}`;
    const inherited = upgrade ?? recovery?.state;
    this.restarts = recovery?.order.restarts ?? upgrade?.masterRestarts ?? 0;
    // Before config and workers: a name held by another live master is refused without touching it.
    ensureNameFree(this.options.service, inherited?.from ?? recovery?.order.from);
    if (recovery) {
      this.log.warn('master restarted after a crash: carrying on', {
        code: 'GRAFT_MASTER_RESTARTED',
        from: recovery.order.from,
        restarts: recovery.order.restarts,
        listeners: recovery.order.listeners,
        ...(recovery.cleanStart ? { cleanStart: recovery.cleanStart } : { generation: (recovery.state?.firstGeneration ?? 1) - 1 }),
      });
    }
    this.listeners = new ListenerRegistry(upgrade?.listeners ?? recovery?.listeners, this.log);
    const sticky = this.options.sticky ? new StickyRouter(() => this.pool, this.log) : undefined;
    this.listeners.install(sticky && ((key, client) => sticky.route(key, client)));
    relaySocketIoAdapter();
    if (inherited) this.applyOverrides.restore(inherited.overrides);
    this.activity = new Activity(inherited?.activity);
    this.orders = new CarriedOrders(inherited?.carried);
    this.observers.add(this.activity.observe);
    this.observers.add((event) => {
      if (event.type !== 'reload' || event.outcome !== 'ok') return;
      const closed = this.listeners.closeParked();
      if (closed.length) this.log.info('closed listening sockets no worker of the new generation listens on', { generation: event.generation, closedListeners: closed });
    });
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
      observe: this.observers.emit,
    });
    this.coordinator = coordinator;
    const own = coordinator.settings(await coordinator.init(inherited?.config));
    // A --swap handler is bundled by the worker itself; --tsx keeps TypeScript to tsx in each worker.
    const typescript = isTypeScript(this.options.entry);
    const builds = typescript && !this.options.swap && !this.options.tsx ? new EntryBuilds(this.options.entry, this.options.paths.build, this.log) : undefined;
    const releases = serviceReleases({ cwd: this.options.cwd, entry: this.options.entry, service: this.options.service, keep: this.options.keepReleases, compiles: !this.options.swap && !this.options.tsx, log: this.log });
    const pool = new WorkerPool(
      {
        entry: this.options.entry,
        args: this.options.args ?? [],
        service: this.options.service,
        workers: inherited?.workers ?? own.workers ?? this.options.workers,
        port: own.port ?? this.options.port,
        readyTimeoutMs: this.options.readyTimeoutMs,
        ready: this.options.ready,
        heartbeatTimeoutMs: this.options.readyTimeoutMs,
        drainTimeoutMs: this.options.drainTimeoutMs,
        idleCloseMs: this.options.idleCloseMs,
        lingerMs: this.options.lingerMs,
        firstGeneration: inherited?.firstGeneration ?? 1,
        swap: this.options.swap,
        tsx: tsxInWorkers(this.options.entry, this.options.tsx),
        builds,
        releases,
        config: () => coordinator.current,
        output: this.output,
        policy: this.options.policy,
        onWorkerLost: (lost) => this.submitQuietly({ kind: 'replace-worker', reason: 'crash', ...lost }),
        onWorkerOverMemory: (ask) => this.submit({ kind: 'replace-worker', reason: 'memory', ...ask }),
        metrics: this.options.metrics !== undefined,
        observe: this.observers.emit,
      },
      this.log,
    );
    this.pool = pool;
    coordinator.attach(pool);
    this.reloads = new Reloads(pool, this.log, this.observers.emit);
    this.swapper = new CodeSwapper(pool, (reason) => this.reloads!.run(reason), this.log, WORKER_REQUEST_TIMEOUT_MS, this.observers.emit);
    if (releases.store) {
      this.deployments = new Deployments({
        store: releases.store,
        health: this.options.health,
        reload: (reason, change) => this.reloads!.run(reason, change),
        liveRelease: () => pool.status().release,
        generation: () => pool.generation ?? 0,
        fetch: this.options.fleet ? fetchRelease(this.options.fleet, this.options.service) : undefined,
        config: () => ({ version: coordinator.current.version, overrides: this.applyOverrides.save() }),
        restoreConfig: async (overrides) => {
          const saved = this.applyOverrides.save();
          this.applyOverrides.restore(overrides);
          try {
            return await coordinator.change('rollback (config)');
          } catch (err) {
            this.applyOverrides.restore(saved);
            throw err;
          }
        },
        port: () => pool.currentPort,
        workers: () => pool.allWorkers().map((w) => w.status()),
        events: (listener) => this.observers.add(listener),
        observe: this.observers.emit,
        stopping: this.stopping.signal,
        log: this.log,
      });
    }
    this.succession = new Succession(
      {
        handover: async () => ({ listeners: this.listeners.list(), state: await this.carriedState() }),
        transferControl: async (successor) => {
          this.files.handOff();
          try {
            await successor.handOver();
          } catch (err) {
            await this.files.takeBack(successor.pid);
            throw err;
          }
          // The successor is in control: this master ends by handing over (unless a stop came first).
          this.end({ fast: false, successor: successor.pid });
        },
        // Stepping down and draining are one teardown, begun by whichever the slot asks for first.
        stepDown: () => void this.tearDown(),
        shutdown: async () => {
          await this.tearDown();
        },
        readyTimeoutMs: this.options.readyTimeoutMs * 2 + 5000,
        drainTimeoutMs: this.options.drainTimeoutMs,
      },
      this.log,
      inherited?.masterGeneration ?? 1,
    );
    if (!upgrade) {
      await this.files.take(recovery?.order.from);
    }
    // Before any worker starts: a metrics or status port that is taken fails the start with one line.
    await this.http.open(this.listeners, inherited?.metrics);
    this.uninstallSignals = installSignals((command, signal) => {
      this.log.info('signal received', { signal, command: command.kind });
      this.submitQuietly(command);
    });
    // Like a worker without its master: a master whose keeper died (kill -9) does not linger.
    whenKeeperGone((keeper, noticed) => {
      if (this.ending) return;
      this.log.warn('the keeper is gone; stopping', { code: 'GRAFT_KEEPER_GONE', keeper, noticed });
      this.submitQuietly({ kind: 'stop', fast: false });
    });
    await pool.start();
    // The standby's warm workers the first generation did not take (it has fewer workers than --warm-workers).
    const unused = stopWarmWorkers();
    if (unused) this.log.info('stopped warm workers the first generation did not take', { warmWorkers: unused });
    if (recovery) {
      const closed = this.listeners.closeUnclaimed();
      if (closed.length) this.log.info('recovery: closed kept sockets no worker listens on', { closedListeners: closed });
    }
    if (upgrade) {
      await Promise.race([awaitHandover(), this.exit.promise]);
      if (this.ending) return;
      await this.files.take(upgrade.from);
      reportInControl();
      const closed = this.listeners.closeUnclaimed();
      this.log.info('upgrade: in control', { from: upgrade.from, generation: pool.generation, configVersion: coordinator.current.version, closedListeners: closed });
    }
    if (this.ending) return;
    this.state = 'running';
    coordinator.watch((source) => this.submitQuietly({ kind: 'config', source }));
    if (this.options.watch) await this.watchCode(this.options.watch);
    this.arbiter.open();
    if (this.options.fleet && !this.ending) {
      // The fleet's NATS client loads only for a master started with --fleet.
      const { Membership } = await import('../fleet/membership.js');
      this.membership = new Membership(
        {
          address: this.options.fleet,
          key: registryKey(this.options.service, this.options.hostId),
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
    if (this.options.bus) await this.listenForOrders({ ...this.options.bus, memoryFile: this.options.paths.orders });
    // Sources may have changed while the masters handed over; unchanged content makes no version.
    if (inherited) this.submitQuietly({ kind: 'config', source: upgrade ? 'upgrade' : 'recovery' });
    // Before the service says it runs: from then on a crash of this master is a restart.
    if (keeperPid() !== undefined) {
      this.crashReadiness = new CrashReadiness({
        stateFile: this.options.paths.state,
        listeners: this.listeners,
        state: async () => ({ ...(await this.carriedState()), masterGeneration: this.succession!.generation }),
        running: () => this.state === 'running',
        log: this.log,
      });
      await this.crashReadiness.start();
    }
    this.log.info('master running', {
      generation: pool.generation,
      workers: pool.desired,
      port: pool.currentPort,
      configVersion: coordinator.current.version,
      masterGeneration: this.succession.generation,
      entry: this.options.entry,
      socket: this.options.paths.socket,
    });
    void reportToKeeper({ graft: 'master-running', pid: process.pid, name: this.options.service, port: pool.currentPort, socket: this.options.paths.socket });
  }

  /** What a successor carries on from: handed over at an upgrade, and kept in the state file for a restart after a crash. */
  private async carriedState(): Promise<Omit<SavedState, 'masterGeneration'>> {
    const pool = this.pool!;
    const metrics = await this.http.carried();
    return {
      workers: pool.desired,
      firstGeneration: pool.nextGeneration,
      config: this.config.inheritance(),
      overrides: this.applyOverrides.save(),
      carried: this.orders.carried(),
      ...(metrics ? { metrics } : {}),
      activity: this.activity.snapshot(),
      masterRestarts: this.restarts,
    };
  }


  submit(command: Command): Promise<unknown> {
    const busy = releaseChangeUnderWay(command, this.arbiter.entries());
    return busy ? Promise.reject(busy) : this.arbiter.submit(command);
  }

  /** For commands nobody waits on (signals, watchers, lost workers): each handler logs its own failure. */
  private submitQuietly(command: Command): void {
    this.arbiter.submit(command).catch((err: unknown) => this.log.debug('command not carried out', { command: command.kind, ...errorFields(err) }));
  }

  private async handle(command: Command): Promise<unknown> {
    try {
      return await this.carryOut(command);
    } finally {
      if ('orders' in command && command.orders) this.orders.carriedOut(command.orders);
      // What a command's asker is told is done survives a crash of this master: the state file has it first.
      await this.crashReadiness?.save();
      if (command.kind === 'config') this.deployments?.configChanged();
      // After the arbiter has let go of this command (so the entry says not busy).
      setImmediate(() => this.membership?.changed());
    }
  }

  private async carryOut(command: Command): Promise<unknown> {
    if (command.kind === 'stop') return this.stop(command.fast);
    if (this.state !== 'running') {
      const why = this.ending?.successor ? `handed over to master ${this.ending.successor}; send it again` : `the master is ${this.state}`;
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
        return command.reason === 'memory' ? pool.replaceOverMemory(command) : pool.replaceLost(command);
      case 'deploy':
        return this.releases().deploy(command);
      case 'rollback':
        return this.releases().rollback(command.id, command.toDisk === true, command.withConfig === true);
    }
  }

  /** With overrides from a bus order, what the top layer held before is kept under the order's id (CarriedOrders). */
  private async applyConfig(source: string, overrides: Overrides | undefined, order: string | undefined): Promise<ApplyOutcome> {
    const coordinator = this.coordinator!;
    if (!overrides) return coordinator.change(source);
    // Overrides stay the top layer until unset: a file edit to the same key does not win over them.
    const saved = this.applyOverrides.save();
    try {
      if (overrides.undo !== undefined) this.applyOverrides.restore(this.orders.before(overrides.undo));
      if (overrides.reset) this.applyOverrides.clear();
      if (overrides.unset?.length) this.applyOverrides.unset(overrides.unset);
      if (overrides.set?.length) this.applyOverrides.set(overrides.set);
      const outcome = await coordinator.change(source);
      if (overrides.undo !== undefined) this.orders.undone(overrides.undo);
      else if (order !== undefined) this.orders.changedConfig(order, saved);
      return outcome;
    } catch (err) {
      this.applyOverrides.restore(saved); // a rejected override must not linger in the top layer
      throw err;
    }
  }

  status(): MasterStatus {
    const { workers, ...pool } = this.pool?.status() ?? { generation: undefined, release: undefined, code: undefined, desired: this.options.workers, actual: 0, reloading: false, crashLoop: false, degraded: [], workers: [] };
    const live = this.coordinator && this.state !== 'starting' ? this.coordinator.current : undefined;
    const { rss, heapUsed, heapTotal } = memoryUsage();
    const http = this.http.urls();
    return {
      master: {
        pid: process.pid,
        keeper: this.keeper,
        launch: { cwd: this.options.cwd, ...masterCommand(), service: this.options.service, drainTimeoutMs: this.options.drainTimeoutMs },
        uptimeMs: Date.now() - this.startedAt,
        memory: { rss, heapUsed, heapTotal },
        entry: this.options.entry,
        port: this.pool?.currentPort ?? this.options.port,
        socket: this.options.paths.socket,
        state: this.state,
        masterGeneration: this.succession?.generation,
        restarts: this.restarts,
        busy: this.arbiter.current?.kind,
        queued: this.arbiter.waiting,
        lastReload: this.activity.lastReload,
        config: live ? { version: live.version, hash: live.hash, source: live.source, lastRejected: this.coordinator!.lastRejected, stores: this.coordinator!.sourceStatus() } : undefined,
        ...(this.bus ? { bus: this.bus.status() } : {}),
        orders: this.orders.ids,
        ...(this.membership ? { fleet: this.membership.status() } : {}),
        name: this.options.service,
        logs: this.options.logs,
        policy: this.options.policy,
        ...(http ? { http } : {}),
        ...pool,
      },
      workers,
    };
  }

  /** Whether `graft fleet` can reach this master: it takes orders on the fleet's own NATS server. */
  private takesFleetOrders(): boolean {
    const fleet = this.options.fleet;
    return fleet !== undefined && (this.options.bus?.urls.some((u) => u.scheme === 'nats' && u.server === fleet.server) ?? false);
  }

  /** This master's entry in the fleet registry. */
  private hostRecord(): HostRecord {
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
      code: master.code,
      release: master.release,
      entry: entryInRelease(this.options.cwd, this.options.entry),
      config: master.config ? { version: master.config.version, hash: master.config.hash } : undefined,
      busy: master.busy,
      masterGeneration: master.masterGeneration,
      takesOrders: this.takesFleetOrders(),
      orders: master.orders,
      startedAt: new Date(this.startedAt).toISOString(),
      at: new Date().toISOString(),
    };
  }

  /** Graceful: every worker drains; fast: they are killed. Resolves once this master has retired. */
  private stop(fast: boolean): Promise<void> {
    if (!this.ending) {
      this.log.info(fast ? 'fast stop' : 'graceful stop', { generation: this.pool?.generation, upgrading: this.succession?.upgrading });
      this.end({ fast });
    } else if (fast && !this.ending.fast) {
      this.ending.fast = true;
      this.log.warn('fast stop: killing workers');
      this.pool?.killAll();
    }
    // Through the succession, an upgrade in flight is aborted (its successor stops too) before this master retires.
    return this.succession ? this.succession.close() : this.tearDown().then(() => {});
  }

  private end(ending: Ending): void {
    this.ending ??= ending;
    this.state = 'stopping';
    this.stopping.abort();
  }

  /** `graft deploy`, `rollback` and `releases`: only for an entry inside the service's directory (a release holds that directory). */
  releases(): Deployments {
    if (this.deployments) return this.deployments;
    throw new GraftError('GRAFT_RELEASE_NO_ENTRY', `the entry ${this.options.entry} is outside the service's directory ${this.options.cwd}: start graft from the directory that holds it to deploy releases`);
  }

  /**
   * The one teardown, however this master ends (this.ending says how): stop
   * taking work, retire the workers, release what it holds, exit. Runs once.
   */
  private tearDown(): Promise<number> {
    if (!this.tornDown) {
      this.tornDown = this.retire(this.ending ?? { fast: false });
      // Exit only after every control client (the `graft stop` waiting on us) has its answer.
      void this.tornDown.then(async (code) => {
        await this.control.settled();
        this.exit.resolve(code);
      });
    }
    return this.tornDown;
  }

  private async retire(ending: Ending): Promise<number> {
    const { successor, failed } = ending;
    try {
      if (successor !== undefined) {
        // The successor accepts on the same sockets and serves metrics and the status page on its own; open pages reconnect to it.
        this.listeners.stopAccepting();
        this.http.close();
      } else {
        // The service ends: a port whose workers have all gone closes (new connections are refused, not held).
        this.listeners.stopParking();
      }
      // A successor opened its own connections to the config stores, the buses and the fleet.
      await this.coordinator?.close();
      await this.watcher?.close();
      await this.bus?.close();
      await this.membership?.close(successor === undefined); // a successor owns this host's entry now
      await this.pool?.stop(ending.fast); // read now: a fast stop may have come meanwhile
      await this.output.settled(); // the workers' last lines come before this master's
      this.http.close();
      this.uninstallSignals?.();
      if (failed) {
        await reportUpgradeFailed(failed);
        await reportToKeeper({ graft: 'master-failed', code: failed.code, message: failed.message });
      }
      this.files.release();
      // A stop ends the service: nothing to restart from (after a handover the successor keeps the file).
      if (successor === undefined) this.crashReadiness?.remove();
      if (!failed) this.log.info('master stopped', { handedOver: successor !== undefined, successor });
      return 0;
    } catch (err) {
      this.log.error('stop failed', errorFields(err));
      return 1;
    }
  }

  /** Bus orders go through the arbiter like every other command; a swap may name only a module the workers declared swappable. */
  private async listenForOrders(options: BusOptions): Promise<void> {
    // The bus clients load only for a master started with --bus.
    const { BusTriggers } = await import('../bus/bus-triggers.js');
    if (this.state !== 'running') return;
    this.bus = new BusTriggers(
      options,
      {
        submit: (command) => this.submit(command),
        swappableModules: () => [...new Set(this.pool!.liveWorkers().flatMap((w) => (w.stats.modules ?? []).map(moduleName)))],
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

/** process.memoryUsage() reads /proc for the RSS and throws when the master is out of file descriptors; status must still answer. */
function memoryUsage(): { rss: number; heapUsed: number; heapTotal: number } {
  try {
    return process.memoryUsage();
  } catch {
    const heap = getHeapStatistics();
    return { rss: 0, heapUsed: heap.used_heap_size, heapTotal: heap.total_heap_size };
  }
}
