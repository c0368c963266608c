import { builtinModules, createRequire, SourceMap } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { GraftError } from '../core/errors.js';
import type { Bundle } from './bundle.js';
import { TIMER_NAMES, TimerLedger } from './timer-ledger.js';

/**
 * Evaluate a bundle as a function (the way Vite's module runner does), not
 * through Node's ESM loader, which never frees a module: once nothing
 * references this generation's functions and objects, all of it can be
 * collected. The sentinel is captured by the function's scope, so it stays
 * reachable exactly as long as anything the generation created does.
 */
export interface Evaluated {
  exports: Record<string, unknown>;
  sentinel: object;
  timers: TimerLedger;
  /** Maps `file (graft generation N):line:col` in a stack to `original-file:line:col`. */
  mapFrame: (frame: string) => string;
}

const builtins = new Set(builtinModules);

async function loadExternal(spec: string, parent: string): Promise<unknown> {
  const hostRequire = createRequire(parent);
  if (spec.startsWith('node:') || builtins.has(spec)) return hostRequire(spec);
  try {
    return hostRequire(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
  }
  let ns: Record<string, unknown>;
  try {
    ns = (await import(pathToFileURL(hostRequire.resolve(spec)).href)) as Record<string, unknown>;
  } catch {
    ns = (await import(spec)) as Record<string, unknown>;
  }
  // Marked so the bundle's interop takes `default` from the namespace.
  return { __esModule: true, ...ns };
}

export function frameMapper(bundle: Bundle, filename: string, sourceDir: string): (frame: string) => string {
  let map: SourceMap | undefined;
  return (frame: string) => {
    const at = frame.lastIndexOf(filename);
    if (at < 0) return frame;
    const m = /^:(\d+):(\d+)/.exec(frame.slice(at + filename.length));
    if (!m) return frame;
    map ??= new SourceMap(JSON.parse(bundle.map) as ConstructorParameters<typeof SourceMap>[0]);
    // The wrapper adds no line before the bundle's first line.
    const entry = map.findEntry(Number(m[1]) - 1, Number(m[2]) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (!entry?.originalSource) return frame;
    const source = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : resolve(sourceDir, entry.originalSource);
    return `${source}:${(entry.originalLine ?? 0) + 1}:${(entry.originalColumn ?? 0) + 1}`;
  };
}

export async function evaluate(bundle: Bundle, file: string, generation: number): Promise<Evaluated> {
  const externals = new Map<string, unknown>();
  for (const spec of bundle.externals) {
    try {
      externals.set(spec, await loadExternal(spec, file));
    } catch (err) {
      throw new GraftError('GRAFT_SWAP_LOAD', `${file}: cannot load package ${JSON.stringify(spec)}: ${(err as Error).message}`);
    }
  }
  const filename = `${file} (graft generation ${generation})`;
  const mapFrame = frameMapper(bundle, filename, dirname(file));
  const sentinel = { module: file, generation };
  const timers = new TimerLedger();
  const params = ['exports', 'require', 'module', '__filename', '__dirname', ...TIMER_NAMES, '__graftSentinel'];
  const source = `(function (${params.join(', ')}) {${bundle.code}\nreturn function () { return __graftSentinel; };\n})`;
  const module = { exports: {} as Record<string, unknown> };
  const require = (spec: string): unknown => {
    if (externals.has(spec)) return externals.get(spec);
    throw new Error(`${file}: require(${JSON.stringify(spec)}) at run time is not supported in a swappable module; import it statically`);
  };
  try {
    const fn = vm.runInThisContext(source, { filename }) as (...args: unknown[]) => unknown;
    fn.call(module.exports, module.exports, require, module, file, dirname(file), ...timers.api(), sentinel);
  } catch (err) {
    const e = err as Error;
    const frame = (e.stack ?? '').split('\n').find((l) => l.includes(filename));
    const where = frame ? mapFrame(frame) : file;
    throw new GraftError('GRAFT_SWAP_LOAD', `${where}: ${e.name ?? 'Error'}: ${e.message} (thrown while the new generation loaded; the live generation keeps serving)`, {
      cause: err,
      ...(e.stack ? { detail: e.stack } : {}),
    });
  }
  return { exports: module.exports, sentinel, timers, mapFrame };
}
