import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { deferred } from '../core/deferred.js';
import { createLogger } from '../core/log.js';
import { KEEPER_ENV, masterCommand, type FromKeeper, type ToKeeper } from './keeper-link.js';

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
  /** It reported serving; one that exits before has printed its own `graft: GRAFT_…` line. */
  served: boolean;
}

type ReportToParent = Extract<ToKeeper, { graft: 'master-running' | 'master-failed' }>;


export class Keeper {
  private readonly log = createLogger({ role: 'keeper' });
  private readonly masters = new Map<number, KeptMaster>();
  /** Listening handles a master sent for a successor it is about to ask for, by master and spawn id. */
  private readonly handles = new Map<string, unknown[]>();
  private readonly exit = deferred<number>();
  private reported = false;

  constructor(private readonly service: string) {}

  run(): Promise<number> {
    process.title = `graft keeper ${this.service}`;
    for (const signal of FORWARDED) process.on(signal, () => this.forward(signal));
    const first = this.spawnMaster({}, []);
    if (!first) return Promise.resolve(1);
    first.inControl = true;
    return this.exit.promise;
  }

  /** The master signals go to: the one in control, else (between a crash and its successor's takeover) the newest. */
  private get current(): KeptMaster | undefined {
    const all = [...this.masters.values()];
    return all.find((m) => m.inControl) ?? all.at(-1);
  }

  private forward(signal: NodeJS.Signals): void {
    const target = this.current;
    if (!target) return;
    this.log.debug('signal forwarded', { signal, master: target.pid });
    try {
      process.kill(target.pid, signal);
    } catch {
      // it just exited; its exit ends the keeper or hands over
    }
  }

  private spawnMaster(env: Record<string, string>, fds: number[], requester?: number): KeptMaster | undefined {
    const { node, args } = masterCommand();
    // Its own process group: a terminal's ^C reaches the keeper only, which passes it on once.
    const child = spawn(node, args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...fds],
      env: { ...process.env, ...env, [KEEPER_ENV]: String(process.pid) },
      detached: true,
    });
    if (child.pid === undefined) {
      child.once('error', (err) => this.log.error('could not start a master', { err }));
      if (!requester) this.exit.resolve(1);
      return undefined;
    }
    const kept: KeptMaster = { child, pid: child.pid, requester, inControl: false, served: false };
    this.masters.set(kept.pid, kept);
    child.on('message', (message: ToKeeper, handle: unknown) => this.fromMaster(kept, message, handle));
    child.once('exit', (code, signal) => this.exited(kept, code, signal));
    return kept;
  }

  private fromMaster(from: KeptMaster, message: ToKeeper, handle: unknown): void {
    if (HANDOVER.has((message as { graft?: string })?.graft ?? '')) return this.handover(from, message);
    switch (message?.graft) {
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
        return this.reportToParent(message);
      case 'master-failed':
        return this.reportToParent(message);
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
    }
    const requester = from.requester !== undefined ? this.masters.get(from.requester) : undefined;
    if (requester?.child.connected) requester.child.send({ graft: 'keeper-message', pid: from.pid, message } satisfies FromKeeper);
  }

  private exited(kept: KeptMaster, code: number | null, signal: NodeJS.Signals | null): void {
    this.masters.delete(kept.pid);
    // A master that failed to start said why in one line; the keeper adds nothing to it.
    (kept.served || kept.requester !== undefined ? this.log.info : this.log.debug)('master exited', { master: kept.pid, exitCode: code, signal, inControl: kept.inControl });
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

  /** `graft start --daemon` waits on the keeper's channel for the first master's outcome. */
  private reportToParent(message: ReportToParent): void {
    if (this.reported) return;
    this.reported = true;
    if (!process.connected) return;
    process.send!(message, undefined, {}, () => process.disconnect());
  }
}
