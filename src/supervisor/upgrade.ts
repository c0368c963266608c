import { spawn, type ChildProcess } from 'node:child_process';
import { GraftError } from '../errors.js';
import type { InheritedListener } from './listeners.js';

/**
 * Master re-exec (`graft upgrade`, SIGUSR2). Node 20 has no execve, so the
 * master starts its successor (same command line, the graft code and Node as
 * they are on disk now) with the listening sockets as inherited fds. Both
 * accept on the same sockets until the successor's workers are ready; then the
 * old master stops accepting, hands over the control socket, drains its
 * workers and exits. The port is never closed.
 */
const ENV = 'GRAFT_UPGRADE';
const FIRST_FD = 4; // 0-2 stdio, 3 the IPC channel to the predecessor

export interface UpgradeState {
  from: number;
  listeners: InheritedListener[];
  workers: number;
  firstGeneration: number;
}

type HandoverMessage =
  | { graft: 'upgrade-ready'; pid: number }
  | { graft: 'upgrade-failed'; error: { code: string; message: string; detail?: string } }
  | { graft: 'take-control' }
  | { graft: 'in-control' };

/** In a successor: what the predecessor handed over (and clear it from the env workers inherit). */
export function takeUpgradeState(): UpgradeState | undefined {
  const raw = process.env[ENV];
  delete process.env[ENV];
  if (!raw) return undefined;
  return JSON.parse(raw) as UpgradeState;
}

export interface Successor {
  pid: number;
  /** Tell the successor to take the control socket; resolves once it has. */
  handOver(): Promise<void>;
}

/** Start a successor and wait until its workers serve; rejects (and kills it) if they don't. */
export function startSuccessor(options: {
  listeners: Array<{ key: string; fd: number }>;
  workers: number;
  firstGeneration: number;
  timeoutMs: number;
}): Promise<Successor> {
  const state: UpgradeState = {
    from: process.pid,
    listeners: options.listeners.map((l, i) => ({ key: l.key, fd: FIRST_FD + i })),
    workers: options.workers,
    firstGeneration: options.firstGeneration,
  };
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...options.listeners.map((l) => l.fd)],
    env: { ...process.env, [ENV]: JSON.stringify(state) },
  });
  return new Promise<Successor>((resolve, reject) => {
    const fail = (message: string, detail?: string) => {
      clearTimeout(timer);
      child.removeAllListeners('message');
      child.kill('SIGKILL');
      reject(new GraftError('GRAFT_UPGRADE_FAILED', `${message}; the current master keeps serving`, detail ? { detail } : undefined));
    };
    const timer = setTimeout(() => fail(`the new master was not ready within ${options.timeoutMs} ms`), options.timeoutMs);
    child.once('error', (err) => fail(`could not start the new master: ${err.message}`));
    child.once('exit', (code, signal) => fail(`the new master exited (${signal ?? `code ${code}`}) before it was ready`));
    child.on('message', (message: HandoverMessage) => {
      if (message?.graft === 'upgrade-failed') {
        fail(`the new master failed to start: ${message.error.code}: ${message.error.message}`, message.error.detail);
      } else if (message?.graft === 'upgrade-ready') {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        child.on('error', () => {}); // a send to a successor that died must not crash this master
        resolve({ pid: message.pid, handOver: () => handOver(child) });
      }
    });
  });
}

function handOver(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      if (child.connected) child.disconnect();
      child.unref();
      resolve();
    };
    const timer = setTimeout(done, 5000);
    child.on('message', (message: HandoverMessage) => {
      if (message?.graft === 'in-control') done();
    });
    child.once('exit', done);
    child.send({ graft: 'take-control' } satisfies HandoverMessage);
  });
}

/** In a successor: report readiness, then wait for the predecessor to hand over control. */
export function awaitHandover(): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    const onMessage = (message: HandoverMessage) => {
      if (message?.graft !== 'take-control') return;
      cleanup();
      resolve();
    };
    const onDisconnect = () => {
      cleanup();
      resolve(); // the predecessor is gone: take control anyway
    };
    const cleanup = () => {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
    };
    process.on('message', onMessage);
    process.once('disconnect', onDisconnect);
    process.send!({ graft: 'upgrade-ready', pid: process.pid } satisfies HandoverMessage);
  });
}

export function reportInControl(): void {
  if (!process.connected) return;
  process.send!({ graft: 'in-control' } satisfies HandoverMessage, undefined, {}, () => {
    if (process.connected) process.disconnect();
  });
}

export function reportUpgradeFailed(error: GraftError): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!({ graft: 'upgrade-failed', error: error.toJSON() } satisfies HandoverMessage, undefined, {}, () => resolve());
  });
}
