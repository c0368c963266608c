/**
 * graft as a user installs it runs from dist/ (`npm run build`, which `npm ci`
 * runs through `prepare`): no tsx in the master or the workers. Measured and
 * tested that way, it is built here first when missing or older than src/,
 * so nothing ever runs stale code.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './paths.js';

/** `node <graftBin> start …`: graft's installed command. */
export const graftBin = join(root, 'bin/graft.js');

/** The newest modification time of a file under dir (0 if there is none). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

function fresh(): boolean {
  const main = join(root, 'dist/cli/main.js');
  return existsSync(main) && statSync(main).mtimeMs >= newest(join(root, 'src'));
}

/**
 * Builds dist/ (scripts/build.mjs: tsc -p tsconfig.build.json into an emptied dist/) unless it is newer than every file of src/.
 * Test files run side by side: one builds while the others wait for it, so that no
 * process starts graft from files another build is still writing.
 */
export function builtPackage(): void {
  // Checked under the lock too: a build in progress may have written dist/cli/main.js already.
  const release = buildLock();
  try {
    // A clean build (scripts/build.mjs, as `npm run build`): no output of a deleted source stays in dist/ to be packed.
    if (!fresh()) execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'pipe' });
  } finally {
    release();
  }
}

/** dist/.build.lock, holding its owner's pid; a lock whose owner died is taken over. Waits synchronously, as builtPackage does. */
function buildLock(): () => void {
  const lock = join(root, 'dist/.build.lock');
  mkdirSync(join(root, 'dist'), { recursive: true });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!ownerAlive(lock)) rmSync(lock, { force: true });
    else Atomics.wait(pause, 0, 0, 200);
  }
}

function ownerAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lock, 'utf8'));
    // Empty: its owner is writing its pid, or died right after creating it.
    if (!pid) return Date.now() - statSync(lock).mtimeMs < 10_000;
  } catch {
    return true; // gone meanwhile: the next attempt takes it
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
