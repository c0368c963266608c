/**
 * graft as a user installs it runs from dist/ (`npm run build`, which `npm ci`
 * runs through `prepare`): no tsx in the master or the workers. Measured and
 * tested that way, it is built here first when missing or older than src/,
 * so nothing ever runs stale code.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tryLock } from '../../src/core/lock-file.js';
import { onCleanup, tempDir } from './cleanup.js';
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

/** dist/.build.lock (tryLock: one whose owner died is taken over). Waits synchronously, as builtPackage does. */
function buildLock(): () => void {
  const lock = join(root, 'dist/.build.lock');
  mkdirSync(join(root, 'dist'), { recursive: true });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    // Far longer than any build: a live owner is waited for however slow the machine.
    const release = tryLock(lock, 10 * 60_000);
    if (release) return release;
    Atomics.wait(pause, 0, 0, 200);
  }
}

/**
 * graft as installed from an earlier commit, for an A/B beside the current
 * tree: a git worktree of `ref` in a temp dir (removed at cleanup), with its
 * own `npm ci` and build. Returns its `bin/graft.js` and the commit's short name.
 */
export function builtAt(ref: string): { bin: string; commit: string } {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const commit = git('rev-parse', '--short', `${ref}^{commit}`);
  const dir = join(tempDir('bench-baseline-'), commit);
  git('worktree', 'add', '--detach', dir, commit);
  onCleanup(() => {
    try {
      git('worktree', 'remove', '--force', dir);
    } catch {
      git('worktree', 'prune');
    }
  });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'pipe' });
  execFileSync(npm, ['run', 'build'], { cwd: dir, stdio: 'pipe' });
  return { bin: join(dir, 'bin/graft.js'), commit };
}
