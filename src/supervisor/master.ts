import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigLoader } from '../config/loader.js';
import { EnvSource } from '../config/sources/env-source.js';
import { FileSource } from '../config/sources/file-source.js';
import { OverrideSource } from '../config/sources/override-source.js';
import { GraftError, errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { CodeSwapper } from './code-swapper.js';
import { CodeWatcher } from './code-watcher.js';
import { ConfigCoordinator, type HistoryEntry } from './config-coordinator.js';
import { sendControl } from './control-client.js';
import type { ControlRequest } from './control-protocol.js';
import { ControlServer } from './control-server.js';
import { ListenerRegistry } from './listeners.js';
import type { MasterPaths } from './paths.js';
import { removeMasterFiles, writeMasterFiles } from './pidfile.js';
import { installSignals, type MasterEvent } from './signals.js';
import { awaitHandover, reportInControl, reportUpgradeFailed, startSuccessor, takeUpgradeState, type UpgradeState } from './upgrade.js';
import { WorkerPool, type PoolStatus } from './worker-pool.js';

export interface MasterOptions {
  entry: string;
  cwd: string;
  workers: number;
  port: number;
  paths: MasterPaths;
  timeoutMs: number;
  gracefulTimeoutMs: number;
  /** A draining worker closes a keep-alive connection idle this long. */
  idleCloseMs: number;
  /** How long a closing connection keeps reading before it is released. */
  lingerMs: number;
  watch: string | undefined;
  /** Serve the entry as a swappable handler; code changes swap in place. */
  swap: boolean;
  /** Config files, lowest layer first. */
  configFiles: string[];
  /** `--set key.path=value` overrides from the command line. */
  overrides: string[];
  /** Set when -w / -p were given: the config's graft.workers / graft.port do not apply. */
  fixed: { port: boolean; workers: boolean };
}

export interface MasterStatus {
  master: {
    pid: number;
    uptimeMs: number;
    entry: string;
    port: number;
    socket: string;
    state: 'starting' | 'running' | 'stopping';
    lastReload: ReloadRecord | undefined;
    config: { version: number; hash: string; source: string; lastRejected: HistoryEntry | undefined } | undefined;
  } & Omit<PoolStatus, 'workers'>;
  workers: PoolStatus['workers'];
}

interface ReloadRecord {
  at: string;
  ok: boolean;
  generation?: number;
  error?: string;
  code?: string;
}

/**
 * The arbiter: owns the listening sockets (through node:cluster), the control
 * socket and the pidfile, and runs no application code. Signals and control
 * requests become events handled by one loop.
 */
export class Master {
  private readonly log = createLogger({ role: 'master' });
  private readonly startedAt = Date.now();
  private readonly upgradeState: UpgradeState | undefined;
  private readonly listeners: ListenerRegistry;
  private pool!: WorkerPool;
  private swapper!: CodeSwapper;
  private readonly coordinator: ConfigCoordinator;
  private readonly applyOverrides = new OverrideSource('apply');
  private readonly control: ControlServer;
  private readonly events: Array<{ event: MasterEvent; signal: NodeJS.Signals }> = [];
  private state: 'starting' | 'running' | 'stopping' = 'starting';
  private lastReload: ReloadRecord | undefined;
  private watcher: CodeWatcher | undefined;
  private upgrading: Promise<{ pid: number }> | undefined;
  private stopping: Promise<void> | undefined;
  private handedOver = false;
  private ownsControl = false;
  private uninstallSignals: (() => void) | undefined;
  private resolveExit!: (code: number) => void;
  private readonly exit = new Promise<number>((resolve) => (this.resolveExit = resolve));

  constructor(private readonly options: MasterOptions) {
    this.upgradeState = takeUpgradeState();
    this.listeners = new ListenerRegistry(this.upgradeState?.listeners);
    const loader = new ConfigLoader([
      ...options.configFiles.map((f) => new FileSource(f)),
      new EnvSource(),
      new OverrideSource('cli', options.overrides),
      this.applyOverrides,
    ]);
    this.coordinator = new ConfigCoordinator(loader, this.log, {
      prepareTimeoutMs: 10_000,
      applyTimeoutMs: 15_000,
      fixed: options.fixed,
    });
    this.control = new ControlServer(options.paths.socket, (req) => this.handle(req), this.log);
  }

  /** Run until stopped; resolves with the process exit code. Rejects if the service cannot start. */
  async run(): Promise<number> {
    this.listeners.install();
    const first = await this.coordinator.init();
    const own = this.coordinator.settings(first);
    this.pool = new WorkerPool(
      {
        entry: this.options.entry,
        workers: this.upgradeState?.workers ?? own.workers ?? this.options.workers,
        port: own.port ?? this.options.port,
        timeoutMs: this.options.timeoutMs,
        gracefulTimeoutMs: this.options.gracefulTimeoutMs,
        idleCloseMs: this.options.idleCloseMs,
        lingerMs: this.options.lingerMs,
        firstGeneration: this.upgradeState?.firstGeneration ?? 1,
        swap: this.options.swap,
        config: () => this.coordinator.current,
        onWorkerReady: (w) => this.coordinator.onWorkerReady(w),
      },
      this.log,
    );
    this.coordinator.attach(this.pool);
    this.swapper = new CodeSwapper(this.pool, this.log, this.options.timeoutMs);
    if (!this.upgradeState) await this.takeControl();
    this.uninstallSignals = installSignals((event, signal) => this.enqueue(event, signal));
    try {
      await this.pool.start();
    } catch (err) {
      const error = err instanceof GraftError ? err : new GraftError('GRAFT_BOOT_FAILED', errorMessage(err));
      await this.pool.stop(true);
      await reportUpgradeFailed(error);
      this.releaseControl();
      this.uninstallSignals();
      throw error;
    }
    if (this.upgradeState) {
      await awaitHandover();
      await this.takeControl();
      reportInControl();
      const closed = this.listeners.closeUnclaimed();
      this.log.info('upgrade: in control', { from: this.upgradeState.from, generation: this.pool.generation, closedListeners: closed });
    }
    this.state = 'running';
    this.coordinator.startWatching();
    if (this.options.watch) await this.startWatching(this.options.watch);
    this.log.info('master running', {
      generation: this.pool.generation,
      workers: this.pool.workerCount,
      port: this.pool.currentPort,
      configVersion: this.coordinator.current.version,
      entry: this.options.entry,
      socket: this.options.paths.socket,
    });
    return this.exit;
  }

  private enqueue(event: MasterEvent, signal: NodeJS.Signals): void {
    this.log.info('signal received', { signal, event });
    this.events.push({ event, signal });
    queueMicrotask(() => this.loop());
  }

  /** The one loop: take each queued event and start what it asks for. */
  private loop(): void {
    for (let next = this.events.shift(); next; next = this.events.shift()) {
      const { event } = next;
      const report = (p: Promise<unknown>) => p.catch((err) => this.log.error(`${event} failed`, { code: (err as GraftError).code, error: errorMessage(err) }));
      switch (event) {
        case 'reload':
          void report(this.reload('signal'));
          break;
        case 'stop':
          void report(this.stop(this.stopping !== undefined));
          break;
        case 'fast-stop':
          void report(this.stop(true));
          break;
        case 'scale-up':
          void report(this.pool.scale(this.pool.workerCount + 1));
          break;
        case 'scale-down':
          if (this.pool.workerCount > 1) void report(this.pool.scale(this.pool.workerCount - 1));
          else this.log.warn('scale-down ignored: a pool keeps at least one worker', { workers: 1 });
          break;
        case 'upgrade':
          void report(this.upgrade());
          break;
      }
    }
  }

  private async handle(request: ControlRequest): Promise<unknown> {
    switch (request.cmd) {
      case 'status':
        return this.status();
      case 'reload':
        return this.reload('control');
      case 'stop':
        await this.stop(request.fast === true);
        return { stopped: true, pid: process.pid };
      case 'scale': {
        const target = request.workers ?? this.pool.workerCount + (request.delta ?? 0);
        return this.pool.scale(target);
      }
      case 'upgrade':
        return this.upgrade();
      case 'config':
        return this.configCommand(request);
      case 'swap':
        if (this.state !== 'running') throw new GraftError('GRAFT_STOPPING', `the master is ${this.state}; swap refused`);
        return this.swapper.swap({ ...(request.module ? { module: request.module } : {}), source: 'control' });
    }
  }

  private async configCommand(request: Extract<ControlRequest, { cmd: 'config' }>): Promise<unknown> {
    switch (request.action) {
      case 'show':
        return { master: this.coordinator.current, effective: await this.coordinator.effective().catch(() => undefined) };
      case 'history':
        return this.coordinator.recent();
      case 'check':
        return this.coordinator.check(new FileSource(request.file));
      case 'apply':
        if (this.state !== 'running') throw new GraftError('GRAFT_STOPPING', `the master is ${this.state}; config apply refused`);
        // Overrides stay the top layer until unset: a file edit to the same key does not win over them.
        const saved = this.applyOverrides.save();
        if (request.reset) this.applyOverrides.clear();
        if (request.unset?.length) this.applyOverrides.unset(request.unset);
        if (request.set?.length) this.applyOverrides.set(request.set);
        try {
          return await this.coordinator.change(request.set?.length || request.unset?.length || request.reset ? 'apply (overrides)' : 'apply');
        } catch (err) {
          this.applyOverrides.restore(saved); // a rejected override must not linger in the top layer
          throw err;
        }
    }
  }

  async reload(reason: 'signal' | 'control' | 'watch', files?: string[]): Promise<{ generation: number; previous: number | undefined }> {
    if (this.state !== 'running') throw new GraftError('GRAFT_STOPPING', `the master is ${this.state}; reload refused`);
    this.log.info('reload requested', { reason, generation: this.pool.generation, ...(files ? { files } : {}) });
    try {
      const result = await this.pool.reload();
      this.lastReload = { at: new Date().toISOString(), ok: true, generation: result.generation };
      return result;
    } catch (err) {
      this.lastReload = { at: new Date().toISOString(), ok: false, error: errorMessage(err), code: (err as GraftError).code };
      throw err;
    }
  }

  status(): MasterStatus {
    const { workers, ...pool } = this.pool.status();
    return {
      master: {
        pid: process.pid,
        uptimeMs: Date.now() - this.startedAt,
        entry: this.options.entry,
        port: this.pool?.currentPort ?? this.options.port,
        socket: this.options.paths.socket,
        state: this.state,
        lastReload: this.lastReload,
        config: this.configStatus(),
        ...pool,
      },
      workers,
    };
  }

  private configStatus(): MasterStatus['master']['config'] {
    try {
      const { version, hash, source } = this.coordinator.current;
      return { version, hash, source, lastRejected: this.coordinator.lastRejected };
    } catch {
      return undefined;
    }
  }

  stop(fast: boolean): Promise<void> {
    if (this.stopping) {
      if (fast) {
        this.log.warn('fast stop: killing workers');
        void this.pool.stop(true);
      }
      return this.stopping;
    }
    this.state = 'stopping';
    this.log.info(fast ? 'fast stop' : 'graceful stop', { generation: this.pool.generation });
    this.stopping = (async () => {
      this.coordinator.close();
      await this.watcher?.close();
      await this.pool.stop(fast);
      this.log.info('master stopped', { handedOver: this.handedOver });
      this.uninstallSignals?.();
      this.releaseControl();
    })();
    // Exit only after every control client (the `graft stop` waiting on us) has its answer.
    void this.stopping
      .then(
        () => 0,
        (err: unknown) => {
          this.log.error('stop failed', { error: errorMessage(err) });
          return 1;
        },
      )
      .then(async (code) => {
        await this.control.settled();
        this.resolveExit(code);
      });
    return this.stopping;
  }

  upgrade(): Promise<{ pid: number }> {
    if (this.state !== 'running') return Promise.reject(new GraftError('GRAFT_STOPPING', `the master is ${this.state}; upgrade refused`));
    this.upgrading ??= this.replaceSelf().finally(() => {
      this.upgrading = undefined;
    });
    return this.upgrading;
  }

  private async replaceSelf(): Promise<{ pid: number }> {
    const listeners = this.listeners.list();
    this.log.info('upgrade: starting a new master', { listeners: listeners.map((l) => l.key), generation: this.pool.generation });
    const successor = await startSuccessor({
      listeners,
      workers: this.pool.workerCount,
      firstGeneration: (this.pool.generation ?? 0) + 1,
      timeoutMs: this.options.timeoutMs * 2 + 5000,
    }).catch((err) => {
      this.log.error('upgrade failed; this master keeps serving', { code: (err as GraftError).code, error: errorMessage(err) });
      throw err;
    });
    // From here on the successor serves: stop accepting, hand over control, drain, exit.
    this.listeners.stopAccepting();
    this.control.close();
    this.ownsControl = false;
    await successor.handOver();
    this.handedOver = true;
    this.log.info('upgrade: handed over; draining this master', { successor: successor.pid, generation: this.pool.generation });
    void this.stop(false);
    return { pid: successor.pid };
  }

  private async takeControl(): Promise<void> {
    const { socket } = this.options.paths;
    mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
    if (existsSync(socket)) {
      const running = await sendControl(socket, { cmd: 'status' }, 0).then(
        (s) => s as MasterStatus,
        () => undefined,
      );
      if (running && running.master.pid !== this.upgradeState?.from) {
        throw new GraftError(
          'GRAFT_ALREADY_RUNNING',
          `a graft master (pid ${running.master.pid}) already runs ${running.master.entry} on ${socket}; use \`graft reload\` or stop it first`,
        );
      }
      try {
        unlinkSync(socket); // stale socket of a master that died
      } catch {
        // gone already
      }
    }
    await this.control.listen();
    this.ownsControl = true;
    writeMasterFiles(this.options.paths, { cwd: this.options.cwd, entry: this.options.entry, pid: process.pid, socket });
  }

  private releaseControl(): void {
    if (this.ownsControl) {
      this.control.close();
      this.ownsControl = false;
    }
    if (!this.handedOver) removeMasterFiles(this.options.paths, process.pid);
  }

  private async startWatching(root: string): Promise<void> {
    this.watcher = new CodeWatcher(root, (files) => {
      // With --swap a change swaps in place (or falls back to a reload); otherwise it reloads the workers.
      const done = this.options.swap ? this.swapper.swap({ files, source: 'watch' }) : this.reload('watch', files);
      done.catch(() => {
        // already logged; the live generation keeps serving
      });
    });
    await this.watcher.start();
    this.log.info('watching for code changes', { root });
  }
}
