#!/usr/bin/env node
/**
 * Builds dist/ from src/ with TypeScript: `npm run build`, and `prepare` (`--prepare`),
 * which npm runs on `npm ci` and `npm pack` in a clone, in a package installed from a
 * git URL (after installing its devDependencies) and in one installed from a folder.
 * Plain JavaScript with no dependency: it must run where nothing is installed yet.
 *
 * The build is clean (dist/ emptied first), so no output of a deleted source is packed.
 * Without TypeScript (a folder installed without its devDependencies) it does not
 * build: with --prepare a dist/ already built is kept; otherwise it says what to do.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
const prepare = process.argv.includes('--prepare');

/** TypeScript's compiler as Node resolves it from this package (its node_modules, then the folders above). */
function findTsc() {
  try {
    return join(dirname(createRequire(join(root, 'package.json')).resolve('typescript/package.json')), 'bin', 'tsc');
  } catch {
    return undefined;
  }
}

const tsc = findTsc();
if (!tsc) {
  const built = existsSync(join(dist, 'cli', 'main.js')) && existsSync(join(dist, 'index.d.ts'));
  if (prepare && built) {
    process.stderr.write(`graftjs: TypeScript is not installed in ${root}: dist/ is used as it is, not rebuilt\n`);
    process.exit(0);
  }
  // npm sets npm_command: `install` when this folder is being installed into a project (npm links it).
  const installing = process.env.npm_command === 'install';
  const lines = [`graftjs: GRAFT_NOT_BUILT: cannot build dist/ in ${root}: TypeScript, a devDependency, is not installed there.`];
  if (existsSync(join(root, 'node_modules'))) lines.push('  Install the devDependencies too (`npm ci`, without --omit=dev), then build again.');
  else if (!installing) lines.push(`  Run \`npm ci\` in ${root} first: it installs TypeScript with the other devDependencies, and builds dist/.`);
  else {
    lines.push("  npm installs a package from a folder without installing that folder's dependencies:");
    lines.push(`  run \`npm ci\` in ${root} first (it installs them and builds dist/), then install the folder again.`);
  }
  if (installing) lines.push('  Or install graftjs from the registry (`npm install graftjs`), from a git URL or from an `npm pack` tarball.');
  process.stderr.write(lines.join('\n') + '\n');
  process.exit(1);
}

// Emptied, not removed: dist/.build.lock (see bench/lib/built.ts) stays with its owner.
mkdirSync(dist, { recursive: true });
for (const entry of readdirSync(dist)) {
  if (entry !== '.build.lock') rmSync(join(dist, entry), { recursive: true, force: true });
}
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
