import * as esbuild from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { moduleType } from './module-type.js';

const SOURCE = /\.[cm]?[jt]sx?$/;
const MENTIONS = /import\.meta|__dirname|__filename/;

/**
 * A bundle runs from somewhere else than its sources (a build directory, or a
 * function graft evaluates), yet apps read files relative to themselves. This
 * plugin gives every project file its own location: `import.meta.url`,
 * `import.meta.dirname` and `import.meta.filename` become the original file's,
 * and so do `__dirname` and `__filename` in a file that runs as CommonJS
 * (`commonjs`: every file of the bundle does). A local variable of the same
 * name is left alone (esbuild's define replaces only free names).
 *
 * The file is compiled on its own first (so its tsconfig applies, as in the
 * bundle), with an inline source map the bundle composes with its own: a stack
 * position still names the original file, line and column.
 */
export function originPlugin(commonjs: boolean): esbuild.Plugin {
  return {
    name: 'graft-origin',
    setup(build) {
      build.onLoad({ filter: SOURCE }, async ({ path }) => {
        if (/[\\/]node_modules[\\/]/.test(path)) return undefined;
        const source = await readFile(path, 'utf8');
        if (!MENTIONS.test(source)) return undefined; // nothing to pin: esbuild loads it as usual
        const define: Record<string, string> = {
          'import.meta.url': JSON.stringify(pathToFileURL(path).href),
          'import.meta.dirname': JSON.stringify(dirname(path)),
          'import.meta.filename': JSON.stringify(path),
        };
        if (commonjs || moduleType(path) === 'commonjs') {
          define.__dirname = JSON.stringify(dirname(path));
          define.__filename = JSON.stringify(path);
        }
        try {
          const result = await esbuild.build({
            entryPoints: [path],
            bundle: false,
            write: false,
            define,
            sourcemap: 'inline',
            sourcesContent: false,
            target: 'esnext',
            platform: 'node',
            logLevel: 'silent',
            outfile: `${path}.js`,
          });
          return { contents: result.outputFiles[0]!.text, loader: 'js', resolveDir: dirname(path), warnings: result.warnings };
        } catch (err) {
          const failure = err as esbuild.BuildFailure;
          if (failure.errors) return { errors: failure.errors, warnings: failure.warnings };
          throw err;
        }
      });
    },
  };
}
