import { resolve } from 'node:path';
import { GraftError } from '../errors.js';
import { defaultPaths, mastersIn, pathsForSocket, type MasterPaths } from '../supervisor/paths.js';

/**
 * Which master a command talks to: --socket, else the one started for the
 * given entry in this directory, else the only one started in this directory.
 */
export function locateMaster(options: { socket?: string | undefined; entry?: string | undefined; cwd?: string }): MasterPaths {
  const cwd = options.cwd ?? process.cwd();
  if (options.socket) return pathsForSocket(resolve(cwd, options.socket));
  if (options.entry) return defaultPaths(cwd, options.entry);
  const found = mastersIn(cwd);
  if (found.length === 1) return pathsForSocket(found[0]!.socket);
  if (found.length === 0) {
    throw new GraftError('GRAFT_NO_MASTER', `no graft master was started from ${cwd}; start one with \`graft start <entry>\`, or pass --socket`);
  }
  throw new GraftError(
    'GRAFT_AMBIGUOUS_MASTER',
    `${found.length} graft masters were started from ${cwd} (${found.map((m) => m.entry).join(', ')}); name the entry or pass --socket`,
  );
}
