import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { processAlive } from './process-alive.js';

/**
 * A lock between the processes of one machine (two masters side by side
 * during `graft upgrade`): a file made with O_EXCL that holds its taker's pid.
 *
 * Returns the lock's release, or undefined while another process holds it. A
 * lock left by a process that died holding it is taken over: its pid is gone,
 * or the file is older than `staleMs` (the pid was given to another process,
 * or the taker died before writing it). A failure other than the lock being
 * held (its directory removed, a read-only disk) is thrown.
 */
export function tryLock(path: string, staleMs: number): (() => void) | undefined {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = lockHolder(path, staleMs);
    if (holder === 'held') return undefined;
    // Left by a dead process: removed, then taken like a free one. Released meanwhile: taken at once.
    if (holder === 'stale') rmSync(path, { force: true });
  }
  return undefined;
}

function lockHolder(path: string, staleMs: number): 'held' | 'stale' | 'released' {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
    text = readFileSync(path, 'utf8');
  } catch {
    return 'released';
  }
  if (Date.now() - mtimeMs > staleMs) return 'stale';
  const pid = Number(text);
  // Empty: its taker is writing its pid now.
  if (text === '' || !Number.isInteger(pid) || pid <= 0) return 'held';
  return processAlive(pid) ? 'held' : 'stale';
}
