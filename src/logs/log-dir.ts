import { closeSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { GraftError, errorMessage } from '../core/errors.js';

/**
 * Where a service's log files live: one file per service, `<dir>/<name>.log`,
 * holding graft's own lines and the app's, rotated as `<name>.log.1` (newest)
 * … `<name>.log.N` (oldest).
 */

/** The log directory of a service started without a terminal (`graft start --daemon`): $XDG_STATE_HOME/graft/logs, or ~/.local/state/graft/logs. */
export function defaultLogDir(): string {
  const state = process.env.XDG_STATE_HOME;
  return state && state.startsWith('/') ? join(state, 'graft', 'logs') : join(homedir(), '.local', 'state', 'graft', 'logs');
}

export function logFile(dir: string, service: string): string {
  return join(resolve(dir), `${service}.log`);
}

/**
 * Make sure the service can write its log file before anything starts: a
 * directory that cannot be created (a file in the way, no permission) or a
 * log file that cannot be opened for appending is GRAFT_LOG_DIR.
 */
export function checkLogDir(dir: string, service: string): string {
  const full = resolve(dir);
  try {
    mkdirSync(full, { recursive: true, mode: 0o700 });
    if (!statSync(full).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new GraftError('GRAFT_LOG_DIR', `cannot use ${full} as the log directory: ${reason(err)}; pass another --log-dir`, { cause: err });
  }
  const file = logFile(full, service);
  try {
    closeSync(openSync(file, 'a', 0o600));
  } catch (err) {
    throw new GraftError('GRAFT_LOG_DIR', `cannot write the log file ${file} in the log directory ${full}: ${reason(err)}; fix its permissions or pass another --log-dir`, { cause: err });
  }
  return file;
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOTDIR' || code === 'EEXIST') return 'a file is in the way';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'EISDIR') return 'a directory is in the way';
  return errorMessage(err);
}

export interface LogFileInfo {
  path: string;
  ino: number;
  size: number;
}

/** The service's log files, oldest first: `<name>.log.N` … `<name>.log.1`, `<name>.log`. */
export function logFiles(file: string): LogFileInfo[] {
  const dir = join(file, '..');
  const base = file.slice(dir.length + 1);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: Array<LogFileInfo & { index: number }> = [];
  for (const name of names) {
    const index = name === base ? 0 : name.startsWith(`${base}.`) && /^\d+$/.test(name.slice(base.length + 1)) ? Number(name.slice(base.length + 1)) : -1;
    if (index < 0) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) found.push({ path: join(dir, name), ino: st.ino, size: st.size, index });
    } catch {
      // rotated away between the listing and the stat
    }
  }
  return found.sort((a, b) => b.index - a.index).map(({ path, ino, size }) => ({ path, ino, size }));
}
