import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import * as esbuild from 'esbuild';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GraftError } from '../core/errors.js';
import { externalsPlugin } from './externals-plugin.js';
import { originPlugin } from './origin-plugin.js';

/**
 * What a bundle is for:
 * - `function`: a swappable generation, the module and its local imports as
 *   one CommonJS function body graft evaluates itself; packages stay bare
 *   specifiers the evaluator resolves from the module's own directory.
 * - `esm` / `cjs`: a precompiled entry, a module file Node loads from a build
 *   directory in a worker that has no TypeScript loader; packages (and the
 *   files `outside` names) are imported by absolute path.
 */
export type BundleFormat = 'function' | 'esm' | 'cjs';

export interface BundlerOptions {
  format?: BundleFormat;
  /**
   * Project files that stay outside an `esm`/`cjs` bundle: modules the host
   * loads too, which must not exist twice. Answers the file to import instead
   * (the same one, or its compiled twin), or undefined for a file to bundle.
   */
  outside?: (file: string) => string | undefined;
  /** What a build failure becomes, given where (`file:line:col`, or the entry) and esbuild's text. */
  failure?: (where: string, text: string) => GraftError;
}

/**
 * A generation's code: the module and its local imports bundled together, so
 * they load together and agree with each other. Packages (node_modules) and
 * Node builtins stay external and are shared with the host process, never
 * reloaded. Every file keeps its own location (see originPlugin).
 */
export interface Bundle {
  /** The code, without a sourceMappingURL comment. */
  code: string;
  /** esbuild's source map (JSON), its sources as absolute file: URLs, to turn a stack position back into file:line. */
  map: string;
  /** Absolute paths of the project files in this generation. */
  inputs: string[];
  /** What the generation imports from outside it: bare specifiers (`function`), absolute paths or URLs (`esm`/`cjs`). */
  externals: string[];
}

export class Bundler {
  private context: esbuild.BuildContext<{ write: false; metafile: true }> | undefined;
  private readonly outfile: string;
  private readonly format: BundleFormat;

  constructor(
    readonly entry: string,
    private readonly options: BundlerOptions = {},
  ) {
    this.format = options.format ?? 'function';
    // Never written (write: false): it only anchors the relative paths esbuild puts in the map.
    this.outfile = resolve(dirname(entry), this.format === 'esm' ? '.graft-bundle.mjs' : '.graft-bundle.cjs');
  }

  async build(): Promise<Bundle> {
    this.context ??= await esbuild.context({
      entryPoints: [this.entry],
      bundle: true,
      target: 'node20',
      write: false,
      metafile: true,
      sourcemap: 'external',
      sourcesContent: false,
      logLevel: 'silent',
      outfile: this.outfile,
      ...(this.format === 'function'
        ? {
            packages: 'external',
            format: 'cjs',
            // 'neutral', not 'node': imports of packages then keep ESM interop (a
            // namespace's default is its default export), which the host loader provides.
            platform: 'neutral',
            plugins: [originPlugin(true)],
          }
        : {
            format: this.format,
            platform: 'node',
            // Node's own resolution: no bundler-only `module` condition or field.
            conditions: [],
            mainFields: ['main'],
            plugins: [externalsPlugin(this.format, this.options.outside ?? (() => undefined)), originPlugin(this.format === 'cjs')],
          }),
    });
    let result: esbuild.BuildResult<{ write: false; metafile: true }>;
    try {
      result = await this.context.rebuild();
    } catch (err) {
      throw this.failure(err);
    }
    // No sourceMappingURL comment: whoever runs the code says where its map is.
    let code = result.outputFiles.find((f) => !f.path.endsWith('.map'))!.text.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
    const map = JSON.parse(result.outputFiles.find((f) => f.path.endsWith('.map'))?.text ?? '{"version":3,"sources":[],"mappings":""}') as { sources: string[]; mappings: string };
    map.sources = map.sources.map((s) => (isAbsolute(s) || s.includes(':') ? s : pathToFileURL(resolve(dirname(this.outfile), s)).href));
    const preamble = this.preamble(code);
    if (preamble) ({ code, mappings: map.mappings } = insertLine(code, map.mappings, preamble));
    const cwd = process.cwd();
    const inputs = Object.keys(result.metafile.inputs).map((p) => resolve(cwd, p));
    const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined) ?? Object.values(result.metafile.outputs)[0];
    const externals = [...new Set((output?.imports ?? []).filter((i) => i.external).map((i) => i.path))];
    return { code, map: JSON.stringify(map), inputs, externals };
  }

  async close(): Promise<void> {
    await this.context?.dispose();
    this.context = undefined;
  }

  /**
   * A precompiled entry's `require` resolves from the entry's directory, not the
   * build directory: what a CommonJS file requires at run time (a computed
   * name, `require.resolve`) is found where the source is. In an ES module
   * bundle only esbuild's `__require` shim needs it, and esbuild names nothing
   * `require` in a bundle that refers to the global one.
   */
  private preamble(code: string): string | undefined {
    const entry = JSON.stringify(this.entry);
    if (this.format === 'cjs') return `require = require("node:module").createRequire(${entry});`;
    if (this.format === 'esm' && /typeof require !== "undefined"/.test(code)) {
      return `import { createRequire as __graftCreateRequire } from "node:module"; const require = __graftCreateRequire(${entry});`;
    }
    return undefined;
  }

  private failure(err: unknown): GraftError {
    const fail = this.options.failure ?? swapLoadError;
    const first = (err as esbuild.BuildFailure).errors?.[0];
    if (!first) return fail(this.entry, `failed to build: ${(err as Error)?.message ?? err}`);
    const where = first.location ? `${resolve(first.location.file)}:${first.location.line}:${first.location.column + 1}` : this.entry;
    const more = (err as esbuild.BuildFailure).errors.length - 1;
    return fail(where, `${first.text}${more > 0 ? ` (and ${more} more)` : ''}`);
  }
}

/** A line put into code after its hashbang and "use strict" (which must stay first), and the map's lines below it moved down by one. */
function insertLine(code: string, mappings: string, line: string): { code: string; mappings: string } {
  const lines = code.split('\n');
  let at = 0;
  if (lines[0]?.startsWith('#!')) at++;
  if (/^(['"])use strict\1;?$/.test(lines[at] ?? '')) at++;
  lines.splice(at, 0, line);
  const groups = mappings.split(';');
  while (groups.length < at) groups.push('');
  groups.splice(at, 0, '');
  return { code: lines.join('\n'), mappings: groups.join(';') };
}

function swapLoadError(where: string, text: string): GraftError {
  return new GraftError('GRAFT_SWAP_LOAD', `${where}: ${text}; the live generation keeps serving`);
}

/** This process's children (a zombie among them until it is reaped here). */
function childPids(): number[] {
  try {
    return readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // not Linux: nothing to wait for
  }
}

/** Those running esbuild's service (a zombie's command line is empty: only a live one is recognized). */
function compilerPids(): number[] {
  return childPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('esbuild');
    } catch {
      return false;
    }
  });
}

/**
 * Stop esbuild's service process and wait (at most 2 s, killing it after 1 s) until it is gone
 * and reaped here. Left running, it outlives a master that exits and is
 * reparented to init, or to a keeper that is PID 1 of a container, which
 * cannot reap a process it did not start: one zombie per upgrade.
 */
export async function stopCompiler(): Promise<void> {
  const running = compilerPids();
  await esbuild.stop(); // SIGTERM
  // Gone means reaped: an exited service stays a child (a zombie) until this process collects it.
  const left = () => childPids().filter((pid) => running.includes(pid));
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && left().length > 0) await delay(20);
    return left().length === 0;
  };
  if (await gone(1000)) return;
  // A service busy on the last build may not heed TERM in time.
  for (const pid of left()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  await gone(1000);
}
