import { fileURLToPath } from 'node:url';
import { GraftError, type SerializedError } from '../core/errors.js';

/** graft's own code, wherever the package is (src/ and dist/ are both one level below its root; source maps point into src/). */
const own = ['dist/', 'src/'].map((dir) => fileURLToPath(new URL(`../../${dir}`, import.meta.url)));

/** Turn whatever the app threw while booting into a message the master can show. */
export function serializeBootError(err: unknown, entry: string): SerializedError {
  const e = err as NodeJS.ErrnoException | undefined;
  const listening = e?.syscall === 'listen' || e?.syscall === 'bind';
  if (e && listening && e.code === 'EADDRINUSE') {
    const where = (e as { port?: number }).port ?? (e as { address?: string }).address ?? '';
    return { code: 'GRAFT_PORT_IN_USE', message: `port ${where} is already in use by another process; stop it or start graft with another --port` };
  }
  if (e && listening && e.code === 'EACCES') {
    const where = (e as { port?: number }).port ?? '';
    return { code: 'GRAFT_PORT_IN_USE', message: `permission denied listening on port ${where}; use a port above 1023 or grant the capability` };
  }
  if (err instanceof GraftError) return err.toJSON();
  const detail = err instanceof Error ? err.stack : undefined;
  return { code: 'GRAFT_BOOT_FAILED', message: `${entry} failed to boot: ${describe(err)}`, ...(detail ? { detail } : {}) };
}

/** esbuild's (tsx's) report of a file that does not compile. */
interface TransformFailure {
  errors: Array<{ text: string; location?: { file: string; line: number; column: number } | null }>;
}

/** What went wrong and where: the file and line of a syntax error, or the app's frame that threw. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const first = (err as Partial<TransformFailure>).errors?.[0];
  if (first?.location) {
    const { file, line, column } = first.location;
    return `syntax error in ${file}:${line}:${column + 1}: ${first.text}`;
  }
  // tsx passes esbuild's failure on as text: "<file>:<line>:<column>: ERROR: <text>".
  const transform = /^(\/.+?:\d+:\d+): ERROR: (.*)$/m.exec(err.message);
  if (transform) return `syntax error in ${transform[1]}: ${transform[2]}`;
  const where = appFrame(err.stack);
  return `${err.name}: ${err.message}${where && !err.message.includes(where) ? ` (at ${where})` : ''}`;
}

/** The first stack frame in the app's own files (not Node's, not a dependency's, not graft's). */
function appFrame(stack: string | undefined): string | undefined {
  for (const line of stack?.split('\n').slice(1) ?? []) {
    const m = /(?:at |\()((?:file:\/\/)?\/[^()\s]+:\d+:\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const location = m[1]!.replace(/^file:\/\//, '');
    if (location.includes('/node_modules/') || own.some((dir) => location.startsWith(dir)) || location.includes('/src/worker/')) continue;
    return location;
  }
  return undefined;
}
