import type * as esbuild from 'esbuild';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface Inner {
  graftInner: true;
}

/** What a plugin passes to build.resolve() for esbuild's own resolution, past this plugin. */
export const INNER_RESOLVE: Inner = { graftInner: true };

/**
 * For a bundle Node loads from a build directory: packages stay outside it, as
 * Node would load them from the source file's own place. Each one is resolved
 * where it is imported (esbuild's resolver with Node's conditions: `import` or
 * `require`, `node`, `default`, no `module`) and imported by absolute path, so
 * it is the same module instance anything else in the process loads. Files
 * `outside` says belong to the host (graft's own modules) stay outside too,
 * imported as the file it names.
 */
export function externalsPlugin(format: 'esm' | 'cjs', outside: (file: string) => string | undefined): esbuild.Plugin {
  return {
    name: 'graft-externals',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point' || (args.pluginData as Inner | undefined)?.graftInner) return undefined;
        // Node takes file: URLs as specifiers; esbuild's resolver takes paths.
        const spec = args.path.startsWith('file:') ? fileURLToPath(args.path) : args.path;
        const resolved = await build.resolve(spec, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: INNER_RESOLVE,
        });
        // A failure is reported by esbuild's own resolution, with the import's file and line.
        if (resolved.errors.length > 0) return undefined;
        if (resolved.external) return { path: args.path, external: true }; // a Node builtin
        const file = /[\\/]node_modules[\\/]/.test(resolved.path) ? resolved.path : outside(resolved.path);
        if (file === undefined) return { path: resolved.path, sideEffects: resolved.sideEffects };
        // An ES module imports by URL (a path is not one); require() takes a path.
        const byUrl = format === 'esm' && (args.kind === 'import-statement' || args.kind === 'dynamic-import');
        return { path: byUrl ? pathToFileURL(file).href : file, external: true };
      });
    },
  };
}
