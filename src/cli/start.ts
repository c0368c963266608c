import { accessSync, constants, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import { defaultConfigFiles } from '../config/default-files.js';
import { GraftError } from '../errors.js';
import { Master } from '../supervisor/master.js';
import { defaultPaths, pathsForSocket } from '../supervisor/paths.js';
import { integer, parse, seconds } from './args.js';

export const startHelp = `graft start <entry> [options]
  Run <entry> (.ts or .js) under a master with a pool of workers, in the foreground.

  -w, --workers N            worker processes (default: available cores)
  -p, --port P               port given to the app as PORT (default: $PORT or 3000)
      --socket PATH          control socket (default: derived from cwd and entry)
      --timeout S            boot readiness and heartbeat limit in seconds (default 30)
      --graceful-timeout S   how long a retired worker may drain (default 30)
      --watch                reload when the app's files change (with --swap: swap them in place)
      --swap                 serve the entry's default export (a handler, or an Express, Fastify,
                             Koa or Hono app) as swappable generations: code changes apply
                             in every worker without a new process
  -c, --config FILE          config file (.json .yaml .toml .env), repeatable, later wins
                             (default: graft.config.{yaml,yml,json,toml} in the working directory)
      --set KEY=VALUE        override one config key, e.g. --set db.pool.max=20 (repeatable)`;

export async function start(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'start',
    argv,
    {
      workers: { type: 'string', short: 'w' },
      port: { type: 'string', short: 'p' },
      socket: { type: 'string' },
      timeout: { type: 'string' },
      'graceful-timeout': { type: 'string' },
      watch: { type: 'boolean' },
      swap: { type: 'boolean' },
      config: { type: 'string', short: 'c', multiple: true },
      set: { type: 'string', multiple: true },
    },
    1,
  );
  const cwd = process.cwd();
  const entryArg = positionals[0];
  if (!entryArg) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft start needs an entry module, e.g. `graft start server.ts`');
  const entry = resolve(cwd, entryArg);
  checkEntry(entryArg, entry);
  const port = integer('--port', values.port ?? process.env.PORT ?? '3000', 0, 65535)!;
  const workers = integer('--workers', values.workers, 1, 1024) ?? availableParallelism();
  const paths = values.socket ? pathsForSocket(resolve(cwd, values.socket)) : defaultPaths(cwd, entryArg);
  const master = new Master({
    entry,
    cwd,
    workers,
    port,
    paths,
    readyTimeoutMs: seconds('--timeout', values.timeout) ?? 30_000,
    drainTimeoutMs: seconds('--graceful-timeout', values['graceful-timeout']) ?? 30_000,
    idleCloseMs: 1000,
    lingerMs: 2000,
    watch: values.watch ? dirname(entry) : undefined,
    swap: values.swap === true,
    configFiles: values.config ? values.config.map((f) => resolve(cwd, f)) : defaultConfigFiles(cwd),
    overrides: values.set ?? [],
    fixed: { port: values.port !== undefined, workers: values.workers !== undefined },
  });
  return master.run();
}

function checkEntry(given: string, entry: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(entry).isFile();
  } catch {
    throw new GraftError('GRAFT_ENTRY_NOT_FOUND', `entry ${given} not found (looked for ${entry}); pass the path of the app's main module`);
  }
  if (!isFile) throw new GraftError('GRAFT_ENTRY_NOT_FOUND', `entry ${given} is not a file (${entry}); pass the path of the app's main module`);
  try {
    accessSync(entry, constants.R_OK);
  } catch {
    throw new GraftError('GRAFT_ENTRY_UNREADABLE', `entry ${relative(process.cwd(), entry) || entry} cannot be read (permission denied); fix its permissions`);
  }
}
