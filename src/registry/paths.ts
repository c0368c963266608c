import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { shortHash } from '../core/hash.js';

/**
 * Where a master keeps its control socket and pidfile when --socket is not
 * given: a per-user runtime directory, named from the working directory and the
 * entry, so `graft reload` typed in the project directory finds its master.
 */
export function runtimeDir(): string {
  if (process.env.GRAFT_RUNTIME_DIR) return resolve(process.env.GRAFT_RUNTIME_DIR);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `graft-${uid}`);
}

export interface MasterPaths {
  socket: string;
  pidfile: string;
  /** Describes the master for lookups: cwd, entry, pid. */
  meta: string;
  /** Where a TypeScript entry is compiled for the workers (hidden: a --watch of the project skips it). */
  build: string;
}

export function pathsForSocket(socket: string): MasterPaths {
  const base = socket.endsWith('.sock') ? socket.slice(0, -5) : socket;
  return { socket, pidfile: `${base}.pid`, meta: `${base}.json`, build: join(dirname(base), `.${basename(base)}.build`) };
}

/** `name` (the service's) tells apart two services of one entry started from one directory. */
export function defaultPaths(cwd: string, entry: string, name?: string): MasterPaths {
  const what = resolve(cwd, entry) + (name !== undefined ? `\0${name}` : '');
  return pathsForSocket(join(runtimeDir(), `${shortHash(resolve(cwd))}-${shortHash(what)}.sock`));
}

export interface MasterMeta {
  cwd: string;
  entry: string;
  pid: number;
  socket: string;
}

/** Masters started from this working directory with default paths. */
export function mastersIn(cwd: string): MasterMeta[] {
  const dir = runtimeDir();
  const prefix = `${shortHash(resolve(cwd))}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: MasterMeta[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.json')) continue;
    try {
      const meta = JSON.parse(readFileSync(join(dir, name), 'utf8')) as MasterMeta;
      if (masterAlive(meta.pid)) found.push(meta);
    } catch {
      // a half-written or foreign file is not a master
    }
  }
  return found;
}

/**
 * A master that still runs: the pid exists and, where /proc tells, it is a
 * graft process (a crashed master's pid may since belong to something else).
 */
export function masterAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc (macOS): the pid is all there is to go by
  }
  return cmdline.includes('graft');
}
