import * as esbuild from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { INNER_RESOLVE } from './externals-plugin.js';
import { moduleType } from './module-type.js';

const SOURCE = /\.[cm]?[jt]sx?$/;
const MENTIONS = /import\.meta|__dirname|__filename/;
/** `import.meta.resolve('…')` of a plain string literal in a source file (no escapes: those are left to the fallback). */
const RESOLVE_LITERAL = /\bimport\.meta\.resolve\(\s*(['"])([^'"\\\n]*)\1\s*[,)]/g;
/** What `import.meta.resolve` becomes in a file that calls it: a function appended to the file. */
const RESOLVE_FN = '__graftImportMetaResolve';

/**
 * A bundle runs from somewhere else than its sources (a build directory, or a
 * function graft evaluates), yet apps read files relative to themselves. This
 * plugin gives every project file its own location: `import.meta.url`,
 * `import.meta.dirname` and `import.meta.filename` become the original file's,
 * and so do `__dirname` and `__filename` in a file that runs as CommonJS
 * (`commonjs`: every file of the bundle does). A local variable of the same
 * name is left alone (esbuild's define replaces only free names). An
 * `import.meta.resolve('…')` of a string literal becomes the URL Node gives
 * it from the original file (a relative one against the file's URL, a
 * package with Node's conditions); one of a computed name still resolves
 * from where the bundle runs.
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
        const resolves = source.includes('import.meta.resolve');
        if (resolves) define['import.meta.resolve'] = RESOLVE_FN;
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
          let contents = result.outputFiles[0]!.text;
          if (resolves) contents = beforeSourceMap(contents, await resolver(source, path, build));
          return { contents, loader: 'js', resolveDir: dirname(path), warnings: result.warnings };
        } catch (err) {
          const failure = err as esbuild.BuildFailure;
          if (failure.errors) return { errors: failure.errors, warnings: failure.warnings };
          throw err;
        }
      });
    },
  };
}

/**
 * The function a file's `import.meta.resolve` calls become (esbuild's define
 * replaces the expression, never text in a string or a comment): the URLs
 * Node gives the file's literal specifiers from the file's own place,
 * resolved at build time, and for anything else (a computed name, a second
 * argument) the runtime's import.meta.resolve, from where the bundle runs.
 */
async function resolver(source: string, path: string, build: esbuild.PluginBuild): Promise<string> {
  const specifiers = [...new Set([...source.matchAll(RESOLVE_LITERAL)].map((m) => m[2]!))];
  const pinned: Record<string, string> = {};
  for (const specifier of specifiers) {
    const url = await resolveFrom(specifier, path, build);
    if (url !== undefined) pinned[specifier] = url;
  }
  return `function ${RESOLVE_FN}(specifier, parent) {
  const pinned = ${JSON.stringify(pinned)};
  return parent === undefined && Object.hasOwn(pinned, specifier) ? pinned[specifier] : import.meta.resolve(specifier, parent);
}
`;
}

/** Code added at the end of a compiled file, before its inline source map comment (which stays the last line, and whose mappings stay true). */
function beforeSourceMap(code: string, added: string): string {
  const at = code.lastIndexOf('//# sourceMappingURL=');
  return at < 0 ? `${code}\n${added}` : `${code.slice(0, at)}${added}${code.slice(at)}`;
}

/** What import.meta.resolve(spec) gives in the file at path; undefined where the call can stay as it is. */
async function resolveFrom(spec: string, path: string, build: esbuild.PluginBuild): Promise<string | undefined> {
  const url = pathToFileURL(path);
  // A relative or absolute path (`.` and `..` too) or URL: resolved against the file's URL, as Node does, whether or not it exists.
  if (/^\.{1,2}(\/|$)|^\//.test(spec) || /^[a-z][a-z\d+.-]*:/i.test(spec)) return /^node:/.test(spec) ? undefined : new URL(spec, url).href;
  const resolved = await build.resolve(spec, { kind: 'import-statement', importer: path, resolveDir: dirname(path), pluginData: INNER_RESOLVE });
  // A builtin resolves the same from anywhere; a name esbuild cannot resolve is left for Node to report.
  if (resolved.errors.length > 0 || resolved.external) return undefined;
  return pathToFileURL(resolved.path).href;
}
