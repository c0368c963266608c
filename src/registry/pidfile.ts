import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MasterMeta, MasterPaths } from './paths.js';

/** Write the pidfile and the lookup record atomically (write, then rename). */
export function writeMasterFiles(paths: MasterPaths, meta: MasterMeta): void {
  mkdirSync(dirname(paths.pidfile), { recursive: true, mode: 0o700 });
  atomicWrite(paths.pidfile, `${meta.pid}\n`);
  atomicWrite(paths.meta, JSON.stringify(meta) + '\n');
}

/** Remove them, but only if they still name this process (a successor may own them now). */
export function removeMasterFiles(paths: MasterPaths, pid: number): void {
  try {
    if (Number(readFileSync(paths.pidfile, 'utf8').trim()) !== pid) return;
  } catch {
    return;
  }
  for (const file of [paths.pidfile, paths.meta]) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
}

function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
