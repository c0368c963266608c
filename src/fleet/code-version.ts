import { readFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { shortHash } from '../core/hash.js';

/**
 * What code a host runs, comparable across hosts: a hash of the entry and every
 * project file it imports (packages excluded), by path relative to the entry's
 * directory and content. Computed when a generation starts and after a swap, so
 * two hosts that deployed the same files show the same version whatever their
 * generation numbers. `undefined` when the entry does not build (the live
 * generation is then whatever loaded last).
 */
export async function codeVersion(entry: string, root: string): Promise<string | undefined> {
  let inputs: string[];
  try {
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      outdir: root,
    });
    inputs = Object.keys(result.metafile.inputs).sort();
  } catch {
    return undefined;
  }
  const parts: Array<string | Uint8Array> = [];
  for (const input of inputs) {
    const file = resolve(process.cwd(), input);
    parts.push(relative(root, file), '\0', await readFile(file).catch(() => Buffer.alloc(0)), '\0');
  }
  return shortHash(parts);
}
