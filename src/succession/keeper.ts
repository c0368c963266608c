import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { deferred } from '../core/deferred.js';
import { createLogger } from '../core/log.js';
import { KEEPER_ENV, masterCommand, masterStdio, type FromKeeper, type ToKeeper } from './keeper-link.js';
import { RECOVER_ENV, type RecoverOrder } from './recovery.js';
import { STANDBY_ENV } from './standby.js';

/**
 * The keeper: what `graft start` is for the whole life of a service. It runs
 * no app code and no master logic; it starts the master, starts each
 * successor a `graft upgrade` asks for (so every master is its child and its
 * pid, the one systemd or a container runtime watches, never changes), carries
 * the upgrade's handover messages between the two masters, forwards the
 * signals it gets to the master in control, and exits with the service, with
 * the master's exit code.
 *
 * Node 20 has no execve: a master cannot become its successor in place, and
 * a successor started by the old master would be reparented to init once
 * that master exits. A parent that stays is the way to a stable pid.
 */
const FORWARDED: NodeJS.Signals[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTTIN', 'SIGTTOU', 'SIGUSR2'];

/** Handover messages a successor sends; the keeper passes them to the master that asked for it. */
const HANDOVER = new Set(['upgrade-ready', 'upgrade-failed', 'in-control']);

interface KeptMaster {
  child: ChildProcess;
  pid: number;
  /** The master whose upgrade started this one (none for the first). */
  requester: number | undefined;
  inControl: boolean;
  /** It reported serving (a standby: it has loaded); one that exits before has printed its own `graft: GRAFT_…` line. */
  served: boolean;
}

type ReportToParent = Extract<ToKeeper, { graft: 'master-running' | 'master-failed' }>;

/** A master that crashes this many times within CRASH_WINDOW_MS is not restarted again: the keeper exits and its own supervisor takes over. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
/** The wait before the nth restart within the window: at once, then doubling from 500 ms. */
const restartDelay = (n: number) => (n <= 1 ? 0 : Math.min(8000, 500 * 2 ** (n - 2)));


export class Keeper {
  private readonly log = createLogger({ role: 'keeper' });
  private readonly masters = new Map<number, KeptMaster>();
  /** Listening handles a master sent for a successor it is about to ask for, by master and spawn id. */
  private readonly handles = new Map<string, unknown[]>();
  private readonly exit = deferred<number>();
  private reported = false;
  /** Copies of each master's listening sockets (keeper-hold), for a restart if it crashes. */
  private readonly held = new Map<number, Array<{ key: string; handle: { fd: number; close(): void } }>>();
  /** When masters in control crashed lately, and how many restarts there were in all. */
  private crashes: number[] = [];
  private restarts = 0;
  private stopping = false;
  /** The standby master, loaded and waiting, that a crash restart hands the kept sockets to. */
  private standby: KeptMaster | undefined;

  constructor(
    private readonly service: string,
    /** standby: keep a standby master (false: --no-standby). */
    private readonly options: { standby: boolean } = { standby: true },
  ) {}

  run(): Promise<number> {
    process.title = `graft keeper ${this.service}`;
    for (const signal of FORWARDED) process.on(signal, () => this.forward(signal));
    const first = this.spawnMaster({}, []);
    if (!first) return Promise.resolve(1);
    first.inControl = true;
    // A standby left behind would keep the keeper's event loop, and its own, alive.
    return this.exit.promise.finally(() => this.retireStandby());
  }

  /** The master signals go to: the one in control, else (between a crash and its successor's takeover) the newest. */
  private get current(): KeptMaster | undefined {
    const all = [...this.masters.values()];
    return all.find((m) => m.inControl) ?? all.at(-1);
  }

  private forward(signal: NodeJS.Signals): void {
    // A stop asked of the service is not a crash to recover from.
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGQUIT') {
      this.stopping = true;
      this.retireStandby();
    }
    const target = this.current;
    if (!target) return;
    this.log.debug('signal forwarded', { signal, master: target.pid });
    try {
      process.kill(target.pid, signal);
    } catch {
      // it just exited; its exit ends the keeper or hands over
    }
  }

  private spawnMaster(env: Record<string, string>, fds: number[], requester?: number, standby = false): KeptMaster | undefined {
    const { node, args } = masterCommand();
    // Its own process group: a terminal's ^C reaches the keeper only, which passes it on once.
    const child = spawn(node, args, {
      stdio: masterStdio(fds),
      env: { ...process.env, ...env, [KEEPER_ENV]: String(process.pid) },
      detached: true,
    });
    if (child.pid === undefined) {
      child.once('error', (err) => this.log.error('could not start a master', { err }));
      if (!requester && !standby) this.exit.resolve(1);
      return undefined;
    }
    const kept: KeptMaster = { child, pid: child.pid, requester, inControl: false, served: false };
    // A standby (standby.ts) is no master of the service until it takes over: it is not in `masters`.
    if (standby) this.standby = kept;
    else this.masters.set(kept.pid, kept);
    child.on('message', (message: ToKeeper, handle: unknown) => this.fromMaster(kept, message, handle));
    child.once('exit', (code, signal) => this.exited(kept, code, signal));
    return kept;
  }

  private fromMaster(from: KeptMaster, message: ToKeeper, handle: unknown): void {
    if (HANDOVER.has((message as { graft?: string })?.graft ?? '')) return this.handover(from, message);
    switch (message?.graft) {
      case 'keeper-hold': {
        const held = message.first ? [] : (this.held.get(from.pid) ?? []);
        if (message.first) for (const h of this.held.get(from.pid) ?? []) h.handle.close();
        held.push({ key: message.key, handle: handle as { fd: number; close(): void } });
        this.held.set(from.pid, held);
        // Sent once it runs (before its master-running, which may still be queued behind these handles' acks).
        from.served = true;
        return;
      }
      case 'keeper-drop': {
        const held = this.held.get(from.pid) ?? [];
        for (const h of held.filter((h) => h.key === message.key)) h.handle.close();
        this.held.set(from.pid, held.filter((h) => h.key !== message.key));
        return;
      }
      case 'keeper-listener': {
        const key = `${from.pid}:${message.spawn}`;
        this.handles.set(key, [...(this.handles.get(key) ?? []), handle]);
        return;
      }
      case 'keeper-spawn':
        return this.spawnSuccessor(from, message);
      case 'keeper-send': {
        const to = this.masters.get(message.pid);
        if (to?.requester === from.pid && to.child.connected) to.child.send(message.message as object);
        return;
      }
      case 'keeper-kill': {
        const to = this.masters.get(message.pid);
        if (to?.requester === from.pid) to.child.kill(message.signal);
        return;
      }
      case 'master-running':
        from.served = true;
        this.log.debug('master running', { master: from.pid });
        if (from.inControl) this.keepStandby();
        return this.reportToParent(message);
      case 'master-failed':
        return this.reportToParent(message);
      case 'standby-ready':
        // Loaded: one that dies from now on (the OOM killer, a stray kill) is replaced at once.
        from.served = true;
        this.log.info('standby master ready', { standby: from.pid });
        return;
    }
  }

  private spawnSuccessor(from: KeptMaster, request: Extract<ToKeeper, { graft: 'keeper-spawn' }>): void {
    const key = `${from.pid}:${request.spawn}`;
    const handles = (this.handles.get(key) ?? []) as Array<{ fd: number; close(): void }>;
    this.handles.delete(key);
    const reply = (message: FromKeeper) => from.child.connected && from.child.send(message);
    if (handles.length !== request.listeners) {
      for (const h of handles) h.close();
      reply({ graft: 'keeper-spawn-failed', spawn: request.spawn, message: `the keeper got ${handles.length} of ${request.listeners} listening sockets` });
      return;
    }
    const successor = this.spawnMaster(request.env, handles.map((h) => h.fd), from.pid);
    // The successor holds its own copies now.
    for (const h of handles) h.close();
    if (!successor) {
      reply({ graft: 'keeper-spawn-failed', spawn: request.spawn, message: 'the keeper could not start a new master' });
      return;
    }
    this.log.info('upgrade: new master started', { master: successor.pid, for: from.pid });
    reply({ graft: 'keeper-spawned', spawn: request.spawn, pid: successor.pid });
  }

  /** A successor's handover message, on its way to the master that started the upgrade. */
  private handover(from: KeptMaster, message: ToKeeper): void {
    if ((message as { graft: string }).graft === 'in-control') {
      for (const m of this.masters.values()) m.inControl = m === from;
      this.log.info('master in control', { master: from.pid });
      // An upgrade may have brought new code: the standby is started again from what is on disk now.
      this.retireStandby();
      this.keepStandby();
    }
    const requester = from.requester !== undefined ? this.masters.get(from.requester) : undefined;
    if (requester?.child.connected) requester.child.send({ graft: 'keeper-message', pid: from.pid, message } satisfies FromKeeper);
  }

  private exited(kept: KeptMaster, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.masters.has(kept.pid)) {
      // A standby. One retired by the keeper is no longer this.standby. One that died after it had
      // loaded is replaced at once; one that could not load is started again only when the master in
      // control next reports running (never in a loop).
      if (this.standby !== kept) return this.log.debug('standby master exited', { standby: kept.pid, exitCode: code, signal });
      this.standby = undefined;
      this.log.warn('the standby master died', { standby: kept.pid, exitCode: code, signal, replaced: kept.served });
      if (kept.served) this.keepStandby();
      return;
    }
    this.masters.delete(kept.pid);
    const held = this.held.get(kept.pid) ?? [];
    this.held.delete(kept.pid);
    // A master that failed to start said why in one line; the keeper adds nothing to it.
    (kept.served || kept.requester !== undefined ? this.log.info : this.log.debug)('master exited', { master: kept.pid, exitCode: code, signal, inControl: kept.inControl });
    // A master in control that served and died without being asked to (a signal, a non-zero exit) is restarted on the kept sockets.
    const crashed = kept.inControl && kept.served && !this.stopping && (signal !== null || code !== 0) && held.length > 0;
    if (crashed && this.masters.size === 0 && this.restart(kept, code, signal, held)) return;
    for (const h of held) h.handle.close();
    const requester = kept.requester !== undefined ? this.masters.get(kept.requester) : undefined;
    if (requester?.child.connected) requester.child.send({ graft: 'keeper-exit', pid: kept.pid, code, signal } satisfies FromKeeper);
    // A successor still waiting for this master's handover takes control by itself.
    for (const m of this.masters.values()) {
      if (m.requester === kept.pid && m.child.connected) m.child.send({ graft: 'predecessor-gone' } satisfies FromKeeper);
    }
    if (this.masters.size > 0) return;
    const status = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    if (!this.reported) this.reportToParent({ graft: 'master-failed', code: 'GRAFT_START_FAILED', message: `the master exited (${signal ?? `code ${code}`}) before it served` });
    this.exit.resolve(status);
  }

  /**
   * Start a new master on the crashed one's sockets (it carries on from the
   * state file), at once the first time, then backing off; false once the
   * master has crashed MAX_CRASHES times within CRASH_WINDOW_MS (the keeper
   * then exits with it, and systemd or the container runtime takes over).
   */
  private restart(dead: KeptMaster, code: number | null, signal: NodeJS.Signals | null, held: Array<{ key: string; handle: { fd: number; close(): void } }>): boolean {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    if (this.crashes.length > MAX_CRASHES) {
      this.log.error(`the master crashed ${this.crashes.length} times within ${CRASH_WINDOW_MS / 1000} s; not restarting it again`, {
        code: 'GRAFT_MASTER_CRASH_LOOP',
        master: dead.pid,
        exitCode: code,
        signal,
      });
      return false;
    }
    this.restarts++;
    const delay = restartDelay(this.crashes.length);
    // Said as it stands now; the standby may still die within the delay (then a new master is started, and logged).
    const standby = this.standby?.child.connected ? this.standby.pid : undefined;
    this.log.warn('the master crashed; restarting it on its sockets', { code: 'GRAFT_MASTER_RESTARTED', master: dead.pid, by: standby ? 'standby' : 'new master', standby, exitCode: code, signal, restarts: this.restarts, delayMs: delay, listeners: held.map((h) => h.key) });
    const order: RecoverOrder = { from: dead.pid, restarts: this.restarts, listeners: held.map((h) => h.key) };
    const start = () => {
      // The standby closes each copy here once it is sent; a new master holds its own as soon as it is spawned.
      const taken = this.stopping ? undefined : this.takeOver(order, held);
      const next = taken ?? (this.stopping ? undefined : this.spawnMaster({ [RECOVER_ENV]: JSON.stringify(order) }, held.map((h) => h.handle.fd)));
      if (next && !taken) this.log.info('new master started on the kept sockets', { master: next.pid, for: dead.pid });
      if (!taken) for (const h of held) h.handle.close();
      // It gives the keeper new copies once it serves.
      if (!next) {
        this.exit.resolve(code ?? 1);
        return;
      }
      next.inControl = true;
    };
    if (delay === 0) start();
    else setTimeout(start, delay);
    return true;
  }

  /** Start a standby master if there is none (not while stopping). */
  private keepStandby(): void {
    if (!this.options.standby || this.stopping || this.standby) return;
    const standby = this.spawnMaster({ [STANDBY_ENV]: '1' }, [], undefined, true);
    if (standby) this.log.info('standby master started', { standby: standby.pid });
  }

  private retireStandby(): void {
    this.standby?.child.kill('SIGTERM');
    this.standby = undefined;
  }

  /**
   * The standby takes over from the master that crashed: it gets the kept
   * sockets over its channel (each copy here is closed once sent) and the
   * order; undefined when there is no standby to take over.
   */
  private takeOver(order: RecoverOrder, held: Array<{ key: string; handle: { fd: number; close(): void } }>): KeptMaster | undefined {
    const standby = this.standby;
    if (!standby?.child.connected) return undefined;
    this.standby = undefined;
    // Loaded as a standby; as a master it has served once it says so.
    standby.served = false;
    this.masters.set(standby.pid, standby);
    for (const h of held) standby.child.send({ graft: 'standby-listener', key: h.key } satisfies FromKeeper, h.handle as never, {}, () => h.handle.close());
    standby.child.send({ graft: 'standby-take', order } satisfies FromKeeper);
    this.log.info('the standby master takes over', { master: standby.pid });
    return standby;
  }

  /** `graft start --daemon` waits on the keeper's channel for the first master's outcome. */
  private reportToParent(message: ReportToParent): void {
    if (this.reported) return;
    this.reported = true;
    if (!process.connected) return;
    process.send!(message, undefined, {}, () => process.disconnect());
  }
}
