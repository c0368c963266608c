import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { shortHash } from '../core/hash.js';

/**
 * What code a generation runs, comparable across hosts: a hash of the entry and
 * every project file it imports (packages excluded), by path relative to the
 * entry's directory and content. Two hosts that deployed the same files show
 * the same version whatever their generation numbers.
 *
 * `files` are the inputs of the build that made the generation's code, read
 * right after that build and before any worker of it starts, so the version
 * names what the generation loaded, not what is on disk when someone asks.
 */
export function codeVersion(files: string[], root: string): string {
  const parts: Array<string | Uint8Array> = [];
  for (const file of [...files].sort()) {
    let content: Buffer;
    try {
      content = readFileSync(file);
    } catch {
      content = Buffer.alloc(0); // gone since the build: its name still counts
    }
    parts.push(relative(root, file), '\0', content, '\0');
  }
  return shortHash(parts);
}

/**
 * The version of an entry the master does not build (plain JavaScript, --tsx,
 * a --swap handler the workers bundle themselves): nothing lists what a
 * worker's Node loaded, so the master lists the entry's imports with an
 * incremental esbuild context (metadata only, nothing written) as the
 * generation starts, at the moment its workers load the same files, and after
 * a swap, in the same command that swapped them in. `undefined` when the
 * entry does not build.
 */
export class CodeScan {
  private context: esbuild.BuildContext<{ write: false; metafile: true }> | undefined;

  constructor(private readonly entry: string) {}

  async version(): Promise<string | undefined> {
    try {
      this.context ??= await esbuild.context({
        entryPoints: [this.entry],
        bundle: true,
        packages: 'external',
        platform: 'node',
        format: 'esm',
        write: false,
        metafile: true,
        logLevel: 'silent',
        outdir: dirname(this.entry),
      });
      const result = await this.context.rebuild();
      const cwd = process.cwd();
      return codeVersion(Object.keys(result.metafile.inputs).map((p) => resolve(cwd, p)), dirname(this.entry));
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.context?.dispose();
    this.context = undefined;
  }
}
