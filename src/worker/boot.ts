import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { whenLoopStarted } from '../jobs/loop.js';
import { WorkerEnv, type ConfigPayload, type ReadyMode } from '../core/ipc.js';
import { appSaidReady } from './app-ready.js';
import { isService, serverOf } from './service.js';
import { toRequestListener } from '../swap/handler.js';
import { Swappable } from '../swap/swappable.js';
import { serializeBootError } from './boot-error.js';
import { exitFlushed } from './exit.js';
import { startHeartbeats } from './heartbeat.js';
import { startMetrics } from './metrics.js';
import { config, ctx, entry, log, registry, runtime, send } from './runtime.js';

/** Tell the master why the app could not boot, then exit. */
export function failBoot(err: unknown): void {
  send({ graft: 'boot-error', error: serializeBootError(err, entry ?? '') }, () => exitFlushed(1));
  // If the channel is gone the callback may never run.
  setTimeout(() => process.exit(1), 1000).unref();
}

/**
 * Boot: install the snapshot the master sent, load the app (a module that
 * listens itself, a defineService, or with --swap a handler), and report
 * ready once it listens and its ready() resolved.
 */
export async function boot(initial: Promise<ConfigPayload>): Promise<void> {
  if (!entry) throw new Error(`${WorkerEnv.entry} is not set; workers are started by the graft master`);
  // The app sees the command line it would have without graft: node, its entry, its own arguments.
  process.argv = [process.argv[0]!, entry, ...process.argv.slice(2)];
  // The snapshot comes first: an app may read config.current while its modules load.
  const init = await initial;
  await config.apply({ version: init.version, source: init.source, read: () => init.data });
  if (process.env[WorkerEnv.swap]) await bootHandler(entry);
  else await bootService(entry, init);
  runtime.ready = true;
  send({ graft: 'ready', configVersion: config.version, restartOn: runtime.service?.restartOn ?? [] });
  startHeartbeats();
  // After the app booted: an app that starts prom-client's default metrics itself has done so by now.
  if (process.env[WorkerEnv.metrics]) startMetrics().catch((err: unknown) => log.warn('metrics: prom-client failed to load', { err }));
}

/**
 * The entry's default export as its source wrote it. A CommonJS module
 * compiled from ESM (a .ts entry in a `"type": "commonjs"` package, which
 * the master bundles to CommonJS, or a tsc build) marks its exports
 * `__esModule` and keeps `export default` under `default`; import() gives
 * the whole exports object as the default.
 */
function defaultExport(mod: { default?: unknown }): unknown {
  const value = mod.default;
  if (typeof value === 'object' && value !== null && (value as { __esModule?: unknown }).__esModule === true && 'default' in value) {
    return (value as { default: unknown }).default;
  }
  return value;
}

/** The entry as an app: a module that listens itself, or a defineService default export. */
async function bootService(entry: string, init: ConfigPayload): Promise<void> {
  // A TypeScript entry runs as the master compiled it for this generation.
  const code = process.env[WorkerEnv.code] ?? entry;
  const mod = (await import(pathToFileURL(code).href)) as { default?: unknown };
  const exported = defaultExport(mod);
  const service = isService(exported) ? exported : undefined;
  runtime.service = service;
  if (config.declaredSchema) {
    // Now that the schema is known, the snapshot is validated (defaults applied).
    await config.apply({ version: init.version, source: init.source, read: () => init.data });
  }
  let readied = false;
  if (service) {
    const server = serverOf(await service.start(ctx));
    if (server && !server.listening && !registry.servers.includes(server)) {
      // graft listens, so it listens only after ready(): node:cluster hands a
      // listening worker connections at once, and the gate must hold until then.
      await service.ready?.(ctx);
      readied = true;
      registry.track(server);
      server.listen(ctx.port);
    } else if (server) {
      registry.track(server);
    }
    if (server || registry.servers.length > 0) await registry.whenListening();
  } else {
    await plainModuleReady((process.env[WorkerEnv.ready] ?? 'auto') as ReadyMode);
  }
  send({ graft: 'listening', address: registry.addresses().join(', ') });
  registry.onListening = () => send({ graft: 'listening', address: registry.addresses().join(', ') });
  if (!readied) await service?.ready?.(ctx);
}

/**
 * How long an entry that is not a defineService may take, after it has
 * evaluated, to call listen() before it counts as a job worker that starts
 * no server (an async start awaiting its database first listens later).
 */
const LOAD_SETTLE_MS = 1000;

/** When a plain module (not a defineService) is ready, by --ready; the master never waits for a listen() that will not come. */
function plainModuleReady(mode: ReadyMode): Promise<void> {
  const loaded = () => (registry.servers.length > 0 ? registry.whenListening() : Promise.resolve());
  switch (mode) {
    case 'listen':
      return registry.whenListening();
    case 'load':
      return loaded();
    case 'message':
      return appSaidReady;
    case 'auto':
      return Promise.race([registry.whenListening(), whenLoopStarted(), appSaidReady, settled()]);
  }
}

/** Resolves LOAD_SETTLE_MS after the entry evaluated, unless a server came up meanwhile (then whenListening decides). */
function settled(): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(() => {
      if (registry.servers.length === 0) resolve();
    }, LOAD_SETTLE_MS).unref();
  });
}

/** `--swap`: serve HTTP from the entry's default export, held as swappable generations. */
async function bootHandler(file: string): Promise<void> {
  const handler = new Swappable(file, { adapt: (exports) => toRequestListener(exports, file) });
  await handler.ready;
  const server = createServer((req, res) => {
    const lease = handler.lease();
    // The request holds its generation until the response is done, not just until the handler returns.
    res.once('close', lease.release);
    lease.value(req, res);
  });
  registry.track(server);
  server.listen(ctx.port);
  await registry.whenListening();
  send({ graft: 'listening', address: registry.addresses().join(', ') });
}
