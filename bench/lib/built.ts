/**
 * graft as a user installs it runs from dist/ (`npm run build`, which `npm ci`
 * runs through `prepare`): no tsx in the master or the workers. Measured and
 * tested that way, it is built here first when missing or older than src/,
 * so nothing ever runs stale code.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './paths.js';

/** `node <graftBin> start …`: graft's installed command. */
export const graftBin = join(root, 'bin/graft.js');

/** The newest modification time of a file under dir (0 if there is none). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return latest;
}

/** Builds dist/ (tsc -p tsconfig.build.json) unless it is newer than every file of src/. */
export function builtPackage(): void {
  const main = join(root, 'dist/cli/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newest(join(root, 'src'))) return;
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'pipe' });
}
