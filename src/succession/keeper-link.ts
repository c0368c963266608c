import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { GraftError } from '../core/errors.js';
import type { RecoverOrder } from './recovery.js';

/**
 * A master's side of the keeper (keeper.ts): the `graft start` process that
 * stays in the foreground for the service's whole life. Under a keeper a
 * master's successor is started by the keeper, not by the master, so that the
 * process systemd, a container runtime or a shell watches never changes; the
 * keeper passes the handover messages between the two masters.
 *
 * Messages on a master's IPC channel to its keeper, besides the handover
 * protocol of upgrade.ts, which the keeper relays.
 */
export type ToKeeper =
  | { graft: 'keeper-listener'; spawn: number; key: string }
  /** A copy of a listening socket for the keeper to hold, should this master crash (sent with the handle); `first` starts the set anew. */
  | { graft: 'keeper-hold'; key: string; first: boolean }
  /** This master closed that listener (its last worker left): the keeper lets go of its copy, so the port can be bound again. */
  | { graft: 'keeper-drop'; key: string }
  | { graft: 'keeper-spawn'; spawn: number; listeners: number; env: Record<string, string> }
  | { graft: 'keeper-send'; pid: number; message: unknown }
  | { graft: 'keeper-kill'; pid: number; signal: NodeJS.Signals }
  | { graft: 'master-running'; pid: number; name: string; port: number; socket: string }
  | { graft: 'master-failed'; code: string; message: string }
  /** A standby master has loaded and waits (standby.ts). */
  | { graft: 'standby-ready' };

export type FromKeeper =
  | { graft: 'keeper-spawned'; spawn: number; pid: number }
  | { graft: 'keeper-spawn-failed'; spawn: number; message: string }
  | { graft: 'keeper-message'; pid: number; message: unknown }
  | { graft: 'keeper-exit'; pid: number; code: number | null; signal: NodeJS.Signals | null }
  | { graft: 'predecessor-gone' }
  /** To the standby master (standby.ts): a kept listening socket (sent with the handle), then the order to take over. */
  | { graft: 'standby-listener'; key: string }
  | { graft: 'standby-take'; order: RecoverOrder };

export const KEEPER_ENV = 'GRAFT_KEEPER';

/** A master started on kept listening sockets gets them as fds from here on: 0-2 stdio, 3 the IPC channel. */
export const FIRST_LISTENER_FD = 4;

/** The stdio of a master started on listening sockets (fds): they follow the IPC channel, from FIRST_LISTENER_FD on. */
export function masterStdio(fds: number[]): Array<'ignore' | 'inherit' | 'ipc' | number> {
  return ['ignore', 'inherit', 'inherit', 'ipc', ...fds];
}

// Read once and taken out of the environment: workers must not inherit it.
const keeper = Number(process.env[KEEPER_ENV]);
delete process.env[KEEPER_ENV];

/** This process was started by a keeper (a master, a successor, a standby) that is gone already: it must not start a service of its own. */
export function keeperGone(): boolean {
  return Number.isInteger(keeper) && keeper > 0 && !process.connected;
}

/** The keeper's pid when this master was started by one and is still connected to it. */
export function keeperPid(): number | undefined {
  return Number.isInteger(keeper) && keeper > 0 && process.connected ? keeper : undefined;
}

function toKeeper(message: ToKeeper, handle?: unknown): void {
  if (process.connected) process.send!(message, handle as never);
}

/**
 * Give the keeper a copy of every listening socket: it starts a new master on them if this one
 * crashes. Resolves once every copy is on its way (in the channel, where a crash of this master
 * no longer loses it: a message with a handle waits for the keeper's ack of the one before).
 */
/**
 * Call `gone` once if this master's keeper dies: at the IPC channel's
 * 'disconnect', or, since Node emits none when the channel closes in the
 * middle of a message it is reading, when the parent pid changes (checked
 * every second). Nothing for a master started without a keeper.
 */
export function whenKeeperGone(gone: (keeper: number, noticed: 'disconnect' | 'parent changed') => void): void {
  const keeper = keeperPid();
  if (keeper === undefined) return;
  let told = false;
  const tell = (noticed: 'disconnect' | 'parent changed') => {
    clearInterval(orphaned);
    if (told) return;
    told = true;
    gone(keeper, noticed);
  };
  process.once('disconnect', () => tell('disconnect'));
  const orphaned = setInterval(() => process.ppid !== keeper && tell('parent changed'), 1000);
  orphaned.unref();
}

export function holdAtKeeper(listeners: Array<{ key: string; handle: unknown }>): Promise<void> {
  return Promise.all(
    listeners.map(
      (l, i) =>
        new Promise<void>((resolve) => {
          if (!process.connected) return resolve();
          process.send!({ graft: 'keeper-hold', key: l.key, first: i === 0 } satisfies ToKeeper, l.handle as never, {}, () => resolve());
        }),
    ),
  ).then(() => {});
}

/** The keeper lets go of its copy of a listener this master closed. */
export function dropAtKeeper(key: string): void {
  toKeeper({ graft: 'keeper-drop', key });
}

/** Tell the keeper (and a `graft start --daemon` waiting on it) that this master serves, or could not start. */
export function reportToKeeper(message: Extract<ToKeeper, { graft: 'master-running' | 'master-failed' }>): Promise<void> {
  return new Promise((resolve) => {
    if (keeperPid() === undefined) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

/**
 * A successor master as the upgrade sees it, whoever started it: the events
 * ('spawn', 'message', 'exit', 'error') and calls of a ChildProcess, plus
 * release(), which lets go of it once it is in control.
 */
export interface MasterChild extends EventEmitter {
  readonly pid: number | undefined;
  send(message: unknown): void;
  kill(signal?: NodeJS.Signals): void;
  release(): void;
}

export interface SuccessorSpawn {
  env: Record<string, string>;
  listeners: Array<{ key: string; fd: number; handle: unknown }>;
}

/** Start a successor: through the keeper when there is one, else as this master's own child. */
export function spawnSuccessor(spec: SuccessorSpawn): MasterChild {
  return keeperPid() !== undefined ? new KeptChild(spec) : new OwnChild(spec);
}

/** The command line a master runs with: the same as this one's (graft and Node as they are on disk now). */
export function masterCommand(): { node: string; args: string[] } {
  return { node: process.execPath, args: [...process.execArgv, ...process.argv.slice(1)] };
}

class OwnChild extends EventEmitter implements MasterChild {
  private readonly child: ChildProcess;

  constructor(spec: SuccessorSpawn) {
    super();
    const { node, args } = masterCommand();
    this.child = spawn(node, args, {
      stdio: masterStdio(spec.listeners.map((l) => l.fd)),
      env: { ...process.env, ...spec.env },
    });
    for (const event of ['spawn', 'message', 'exit', 'error']) this.child.on(event, (...args: unknown[]) => this.emit(event, ...args));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(message: unknown): void {
    if (this.child.connected) this.child.send(message as object);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }

  release(): void {
    if (this.child.connected) this.child.disconnect();
    this.child.unref();
  }
}

let spawns = 0;

/** A successor the keeper started on this master's behalf; its messages and exit come through the keeper. */
class KeptChild extends EventEmitter implements MasterChild {
  pid: number | undefined;
  private exited = false;
  private readonly id = ++spawns;
  private readonly onKeeper = (message: FromKeeper) => this.fromKeeper(message);
  private readonly onDisconnect = () => this.gone(null, 'SIGKILL');

  constructor(spec: SuccessorSpawn) {
    super();
    process.on('message', this.onKeeper);
    process.once('disconnect', this.onDisconnect);
    // One handle per message (Node's IPC carries one); the keeper collects them by spawn id, in order.
    for (const l of spec.listeners) toKeeper({ graft: 'keeper-listener', spawn: this.id, key: l.key }, l.handle);
    toKeeper({ graft: 'keeper-spawn', spawn: this.id, listeners: spec.listeners.length, env: spec.env });
  }

  private fromKeeper(message: FromKeeper): void {
    switch (message?.graft) {
      case 'keeper-spawned':
        if (message.spawn !== this.id) return;
        this.pid = message.pid;
        this.emit('spawn');
        return;
      case 'keeper-spawn-failed':
        if (message.spawn !== this.id) return;
        this.emit('error', new GraftError('GRAFT_UPGRADE_FAILED', message.message));
        this.gone(null, null);
        return;
      case 'keeper-message':
        if (message.pid === this.pid) this.emit('message', message.message);
        return;
      case 'keeper-exit':
        if (message.pid === this.pid) this.gone(message.code, message.signal);
        return;
    }
  }

  private gone(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.detach();
    this.emit('exit', code, signal);
  }

  private detach(): void {
    process.off('message', this.onKeeper);
    process.off('disconnect', this.onDisconnect);
  }

  send(message: unknown): void {
    if (this.pid !== undefined && !this.exited) toKeeper({ graft: 'keeper-send', pid: this.pid, message });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.pid !== undefined && !this.exited) toKeeper({ graft: 'keeper-kill', pid: this.pid, signal });
  }

  /** It serves now; the keeper keeps it. */
  release(): void {
    this.detach();
  }
}

/**
 * In a successor under a keeper: resolves if the predecessor dies before it
 * handed over (the keeper says so), the way a lost IPC channel says it
 * without one. Listening starts at once so that the news is never missed.
 */
export function predecessorGone(): Promise<void> {
  return gone;
}

const gone = new Promise<void>((resolve) => {
  const onMessage = (message: FromKeeper) => {
    if (message?.graft !== 'predecessor-gone') return;
    process.off('message', onMessage);
    resolve();
  };
  if (keeperPid() !== undefined) process.on('message', onMessage);
});
