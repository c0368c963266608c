import * as esbuild from 'esbuild';
import { dirname, resolve } from 'node:path';
import { GraftError } from '../errors.js';

/**
 * A generation's code: the module and its local imports bundled into one
 * CommonJS function body, so they load together and agree with each other.
 * Packages (node_modules) and Node builtins stay external and are shared with
 * the host process, never reloaded.
 */
export interface Bundle {
  code: string;
  /** esbuild's source map (JSON), to turn a stack position back into file:line. */
  map: string;
  /** Absolute paths of the project files in this generation. */
  inputs: string[];
  /** Bare specifiers the generation imports from packages or builtins. */
  externals: string[];
}

export class Bundler {
  private context: esbuild.BuildContext<{ write: false; metafile: true }> | undefined;
  private readonly outfile: string;

  constructor(readonly entry: string) {
    this.outfile = resolve(dirname(entry), '.graft-swap.cjs');
  }

  async build(): Promise<Bundle> {
    this.context ??= await esbuild.context({
      entryPoints: [this.entry],
      bundle: true,
      packages: 'external',
      format: 'cjs',
      // 'neutral', not 'node': imports of packages then keep ESM interop (a
      // namespace's default is its default export), which the host loader provides.
      platform: 'neutral',
      target: 'node20',
      write: false,
      metafile: true,
      sourcemap: 'external',
      sourcesContent: false,
      logLevel: 'silent',
      outfile: this.outfile,
    });
    let result: esbuild.BuildResult<{ write: false; metafile: true }>;
    try {
      result = await this.context.rebuild();
    } catch (err) {
      throw loadError(err, this.entry);
    }
    // No sourceMappingURL comment: graft maps positions itself, and Node must not cache a map per generation.
    const code = result.outputFiles.find((f) => f.path.endsWith('.cjs'))!.text.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
    const map = result.outputFiles.find((f) => f.path.endsWith('.map'))?.text ?? '{}';
    const cwd = process.cwd();
    const inputs = Object.keys(result.metafile.inputs).map((p) => resolve(cwd, p));
    const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined) ?? Object.values(result.metafile.outputs)[0];
    const externals = [...new Set((output?.imports ?? []).filter((i) => i.external).map((i) => i.path))];
    return { code, map, inputs, externals };
  }

  async close(): Promise<void> {
    await this.context?.dispose();
    this.context = undefined;
  }
}

function loadError(err: unknown, entry: string): GraftError {
  const failure = err as esbuild.BuildFailure;
  const first = failure.errors?.[0];
  if (first) {
    const where = first.location ? `${resolve(first.location.file)}:${first.location.line}:${first.location.column + 1}` : entry;
    const more = failure.errors.length > 1 ? ` (and ${failure.errors.length - 1} more)` : '';
    return new GraftError('GRAFT_SWAP_LOAD', `${where}: ${first.text}${more}; the live generation keeps serving`);
  }
  return new GraftError('GRAFT_SWAP_LOAD', `${entry} failed to build: ${(err as Error)?.message ?? err}; the live generation keeps serving`);
}
