import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { shortHash } from '../core/hash.js';
import { processAlive } from '../core/process-alive.js';

/**
 * Where a master keeps its control socket when --socket is not given, and
 * where the service registry is: a per-user runtime directory.
 */
export function runtimeDir(): string {
  if (process.env.GRAFT_RUNTIME_DIR) return resolve(process.env.GRAFT_RUNTIME_DIR);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `graft-${uid}`);
}

export interface MasterPaths {
  socket: string;
  /** Where a TypeScript entry is compiled for the workers (hidden: a --watch of the project skips it). */
  build: string;
  /** The state a master keeps current for the one the keeper starts if it crashes (recovery.ts). */
  state: string;
  /** The bus orders its masters carried out lately (bus/order-memory.ts); kept after a stop. */
  orders: string;
}

export function pathsForSocket(socket: string): MasterPaths {
  const base = socket.endsWith('.sock') ? socket.slice(0, -5) : socket;
  const hidden = (suffix: string) => join(dirname(base), `.${basename(base)}${suffix}`);
  return { socket, build: hidden('.build'), state: hidden('.state.json'), orders: hidden('.orders.json') };
}

/**
 * The default control socket, named from the working directory, the entry
 * and `name` (the service's), which tells apart two services of one entry
 * started from one directory. Commands find it through the service registry.
 */
export function defaultPaths(cwd: string, entry: string, name: string): MasterPaths {
  const what = `${resolve(cwd, entry)}\0${name}`;
  return pathsForSocket(join(runtimeDir(), `${shortHash(resolve(cwd))}-${shortHash(what)}.sock`));
}

/**
 * A master that still runs: the pid exists and, where /proc tells, it is a
 * graft process (a crashed master's pid may since belong to something else).
 */
export function masterAlive(pid: number): boolean {
  if (!processAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc (macOS): the pid is all there is to go by
  }
  return cmdline.includes('graft');
}
