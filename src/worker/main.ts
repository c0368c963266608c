/**
 * Worker process entry (cluster exec). Waits for its config snapshot, loads
 * the app, reports ready, sends heartbeats, applies config changes the master
 * sends, and drains when its master retires it. Exits on its own when the
 * master is gone (node:cluster exits a worker whose IPC channel closes).
 */
import { pathToFileURL } from 'node:url';
import { runningLoops, whenLoopStarted } from '../config/loop.js';
import { issuesError, validateConfig } from '../config/schema.js';
import { config as typedConfig, type ConfigStore } from '../config/store.js';
import { GraftError } from '../errors.js';
import { isGraftMessage, WorkerEnv, type ConfigPayload, type MasterMessage, type WorkerMessage, type WorkerRequest } from '../ipc.js';
import { createLogger } from '../log.js';
import { isService, serverOf, type Service, type ServiceContext } from '../service.js';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { toRequestListener } from '../swap/handler.js';
import { Swappable, swappables } from '../swap/swappable.js';
import { needsReload } from '../swap/trigger.js';
import type { SwapReply } from '../ipc.js';
import { serializeBootError } from './boot-error.js';
import { ServerRegistry, type ListenFailure } from './server-registry.js';

// The runtime handles raw snapshots; only the app sees the declared type.
const config = typedConfig as unknown as ConfigStore<unknown>;
const entry = process.env[WorkerEnv.entry];
const generation = Number(process.env[WorkerEnv.generation] ?? 0);
const workerIndex = Number(process.env[WorkerEnv.index] ?? 0);
const heartbeatMs = Number(process.env[WorkerEnv.heartbeatMs] ?? 1000);
const port = Number(process.env.PORT ?? 0);
const log = createLogger({ role: 'worker', generation, worker: workerIndex });
const drainController = new AbortController();
const ctx: ServiceContext<unknown> = { port, generation, workerIndex, signal: drainController.signal, config };

let ready = false;
let draining = false;
let service: Service<unknown> | undefined;

function send(message: WorkerMessage, done?: () => void): void {
  if (!process.connected) return done?.();
  process.send!(message, undefined, {}, () => done?.());
}

function failBoot(err: unknown): void {
  send({ graft: 'boot-error', error: serializeBootError(err, entry ?? '') }, () => process.exit(1));
  // If the channel is gone the callback may never run.
  setTimeout(() => process.exit(1), 1000).unref();
}

process.on('uncaughtException', (err) => {
  if (!ready) return failBoot(err);
  log.error('uncaught exception; worker exits and the master replaces it', { err });
  process.exit(1);
});

const registry = new ServerRegistry((failure: ListenFailure) => {
  if (failure.unhandled || !ready) failBoot(failure.error);
});
registry.install();

// The terminal's Ctrl-C and hangup reach the whole process group; the master
// decides what happens to workers, so they ignore these. TERM sent to a single
// worker drains it, and the master replaces it.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.on('SIGQUIT', () => {});
process.on('SIGTERM', () =>
  void drain({ graft: 'drain', idleCloseMs: Number(process.env[WorkerEnv.idleCloseMs] ?? 1000), lingerMs: Number(process.env[WorkerEnv.lingerMs] ?? 2000) }),
);

let resolveInit!: (payload: ConfigPayload) => void;
const initialConfig = new Promise<ConfigPayload>((resolve) => (resolveInit = resolve));

process.on('message', (message: unknown) => {
  if (!isGraftMessage<MasterMessage>(message)) return;
  switch (message.graft) {
    case 'drain':
      void drain(message);
      break;
    case 'exit':
      // Flush what is queued (the answers to late connection handoffs) before exiting.
      send({ graft: 'bye' }, () => process.exit(0));
      break;
    case 'config-init':
      resolveInit(message.config);
      break;
    default:
      void answer(message);
  }
});

send({ graft: 'hello' });

async function answer(request: WorkerRequest): Promise<void> {
  const { rid } = request;
  try {
    switch (request.graft) {
      case 'config-prepare': {
        const prepared = await config.prepare(request.config.data, { version: request.config.version, source: request.config.source });
        if (!prepared.ok) {
          const error = issuesError(prepared.issues, request.config.source).toJSON();
          return send({ graft: 'reply', rid, ok: false, error, issues: prepared.issues });
        }
        return send({ graft: 'reply', rid, ok: true, value: prepared.value });
      }
      case 'config-commit':
        return reportApplied(rid, await config.commit(request.version));
      case 'config-apply': {
        const prepared = await config.prepare(request.config.data, { version: request.config.version, source: request.config.source });
        if (!prepared.ok) {
          const error = issuesError(prepared.issues, request.config.source).toJSON();
          return send({ graft: 'reply', rid, ok: false, error, issues: prepared.issues });
        }
        return reportApplied(rid, await config.commit(request.config.version));
      }
      case 'config-check': {
        const checked = await validateConfig(config.declaredSchema, request.config.data);
        if ('issues' in checked) {
          const error = issuesError(checked.issues, request.config.source).toJSON();
          return send({ graft: 'reply', rid, ok: false, error, issues: checked.issues });
        }
        return send({ graft: 'reply', rid, ok: true, value: checked.value });
      }
      case 'swap':
        return send({ graft: 'reply', rid, ok: true, value: await swapModules(request.module, request.files) });
      case 'config-get':
        return send({ graft: 'reply', rid, ok: true, value: config.loaded ? config.snapshotInfo : undefined });
    }
  } catch (err) {
    const error = err instanceof GraftError ? err : new GraftError('GRAFT_CONFIG_APPLY_FAILED', (err as Error).message);
    send({ graft: 'reply', rid, ok: false, error: error.toJSON() });
  }
}

function reportApplied(rid: number, failures: Array<{ path: string; error: string }>): void {
  for (const f of failures) log.error('config listener failed', { configVersion: config.version, path: f.path, error: f.error });
  log.info('config applied', { configVersion: config.version, changed: config.snapshotInfo.changed });
  send({ graft: 'reply', rid, ok: true, value: { version: config.version, failures } });
  heartbeat();
}

function heartbeat(): void {
  if (!ready) return;
  const modules = swappables().map((h) => `${h.name}@${h.generation ?? '-'}`);
  send({ graft: 'heartbeat', ...registry.stats(), rss: process.memoryUsage.rss(), configVersion: config.loaded ? config.version : 0, ...(modules.length ? { modules } : {}) });
}

/** A swap order from the master: swap the modules it touches, or say a reload is needed. */
async function swapModules(module: string | undefined, files: string[] | undefined): Promise<SwapReply> {
  const reason = files ? needsReload(files) : undefined;
  if (reason) return { needsReload: `${reason} changed: packages are shared, not swapped`, modules: [] };
  const targets = swappables().filter((h) => {
    if (module) return h.name === module || h.path === resolve(module);
    if (files) return files.some((f) => h.inputs.includes(resolve(f)));
    return true;
  });
  if (module && targets.length === 0) {
    throw new GraftError('GRAFT_SWAP_NOT_SWAPPABLE', `${module} is not a swappable module of this worker (swappable: ${swappables().map((h) => h.name).join(', ') || 'none'})`);
  }
  const results: SwapReply['modules'] = [];
  for (const h of targets) {
    try {
      const r = await h.swap();
      heartbeat();
      results.push({ module: r.module, generation: r.generation, ...(r.previous !== undefined ? { previous: r.previous } : {}) });
    } catch (err) {
      if (err instanceof GraftError && err.code === 'GRAFT_SWAP_NOT_SWAPPABLE') return { needsReload: err.message, modules: results };
      throw err;
    }
  }
  for (const h of swappables()) {
    if (!targets.includes(h) && h.generation !== undefined) results.push({ module: h.name, generation: h.generation, unchanged: true });
  }
  return { modules: results };
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
  server.listen(port);
  await registry.whenListening();
  send({ graft: 'listening', address: registry.addresses().join(', ') });
}

async function boot(): Promise<void> {
  if (!entry) throw new Error(`${WorkerEnv.entry} is not set; workers are started by the graft master`);
  // The snapshot comes first: an app may read config.current while its modules load.
  const init = await initialConfig;
  await config.install({ version: init.version, hash: init.hash, source: init.source, value: init.data });
  if (process.env[WorkerEnv.swap]) await bootHandler(entry);
  else await bootService(entry, init);
  ready = true;
  send({ graft: 'ready', configVersion: config.version, restartOn: service?.restartOn ?? [] });
  heartbeat();
  setInterval(heartbeat, heartbeatMs).unref();
}

/** The entry as an app: a module that listens itself, or a defineService default export. */
async function bootService(entry: string, init: ConfigPayload): Promise<void> {
  const mod = (await import(pathToFileURL(entry).href)) as { default?: unknown };
  service = isService(mod.default) ? mod.default : undefined;
  if (config.declaredSchema) {
    // Now that the schema is known, the snapshot is validated (defaults applied).
    const prepared = await config.prepare(init.data, { version: init.version, source: init.source });
    if (!prepared.ok) throw issuesError(prepared.issues, init.source);
    await config.commit(init.version);
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
      server.listen(port);
    } else if (server) {
      registry.track(server);
    }
    if (server || registry.servers.length > 0) await registry.whenListening();
  } else {
    await Promise.race([registry.whenListening(), whenLoopStarted()]);
  }
  send({ graft: 'listening', address: registry.addresses().join(', ') });
  if (!readied) await service?.ready?.(ctx);
}

async function drain(message: Extract<MasterMessage, { graft: 'drain' }>): Promise<void> {
  if (draining) return;
  draining = true;
  drainController.abort();
  log.debug('draining', { ...registry.stats() });
  registry.stopAccepting();
  // Sent after node:cluster's own close message on the same channel, so when the
  // master reads it this worker is out of the round-robin.
  send({ graft: 'closed' });
  await Promise.all([...runningLoops()].map((l) => l.stop()));
  await registry.drain({ idleCloseMs: message.idleCloseMs, lingerMs: message.lingerMs });
  try {
    await service?.stop?.(ctx);
  } catch (err) {
    log.error('service stop() threw', { err });
  }
  // Wait for the master's word: it may still be handing this worker a connection
  // it accepted before our close reached it; node:cluster answers those by
  // passing them on, which needs this process alive.
  send({ graft: 'drained', served: registry.stats().served });
  setTimeout(() => process.exit(0), 2000).unref();
}

boot().catch(failBoot);
