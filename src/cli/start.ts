import { accessSync, constants, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import { parseBusUrl } from '../bus/bus-url.js';
import type { BusOptions } from '../bus/bus-triggers.js';
import { hostId, serviceName } from '../bus/names.js';
import { loadOrderKey } from '../bus/order-key.js';
import { parseFleetUrl } from '../fleet/fleet-url.js';
import { defaultConfigFiles } from '../config/default-files.js';
import { parseConfigArg } from '../config/sources/source-url.js';
import { GraftError } from '../errors.js';
import { Master } from '../supervisor/master.js';
import { defaultPaths, pathsForSocket } from '../supervisor/paths.js';
import { integer, parse, seconds } from './args.js';

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
      tsx: { type: 'boolean' },
      config: { type: 'string', short: 'c', multiple: true },
      'config-cache': { type: 'string' },
      set: { type: 'string', multiple: true },
      bus: { type: 'string', multiple: true },
      'bus-key': { type: 'string' },
      name: { type: 'string' },
      'host-id': { type: 'string' },
      fleet: { type: 'string' },
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
  const bus = busOptions(values, entry, cwd);
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
    tsx: values.tsx === true,
    config: values.config ? values.config.map((c) => parseConfigArg(c, cwd)) : defaultConfigFiles(cwd).map((path) => ({ kind: 'file', path })),
    configCache: values['config-cache'] ? resolve(cwd, values['config-cache']) : undefined,
    overrides: values.set ?? [],
    fixed: { port: values.port !== undefined, workers: values.workers !== undefined },
    service: serviceName(values.name, entry),
    hostId: hostId(values['host-id']),
    fleet: values.fleet !== undefined ? parseFleetUrl(values.fleet) : undefined,
    bus,
  });
  return master.run();
}

/** --bus (repeatable) needs --bus-key; --name / --host-id default to the entry's and the machine's names. */
function busOptions(values: { bus?: string[] | undefined; 'bus-key'?: string | undefined; name?: string | undefined; 'host-id'?: string | undefined }, entry: string, cwd: string): BusOptions | undefined {
  if (!values.bus?.length) {
    if (values['bus-key'] !== undefined) throw new GraftError('GRAFT_BAD_ARGUMENT', '--bus-key is for bus orders; give --bus nats://… or --bus amqp://… too');
    return undefined;
  }
  const urls = values.bus.map((u) => parseBusUrl(u));
  if (!values['bus-key']) throw new GraftError('GRAFT_BUS_KEY', '--bus needs --bus-key FILE: the key every order is checked with (`graft keygen --hmac FILE` or `--ed25519 FILE`)');
  return { urls, key: loadOrderKey(resolve(cwd, values['bus-key'])), service: serviceName(values.name, entry), host: hostId(values['host-id']) };
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

