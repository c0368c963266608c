import { accessSync, constants, lstatSync, readlinkSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import { parseBusUrl } from '../net/bus-url.js';
import type { BusOptions } from '../bus/bus-triggers.js';
import { hostId, serviceName } from '../bus/names.js';
import { orderKeyFor } from '../bus/order-key.js';
import { parseFleetUrl } from '../net/fleet-url.js';
import { defaultConfigFiles } from '../config/default-files.js';
import { parseConfigArg } from '../net/source-url.js';
import { GraftError } from '../core/errors.js';
import { READY_MODES, type ReadyMode } from '../core/ipc.js';
import { checkLogDir, defaultLogDir, logFile } from '../logs/log-dir.js';
import type { LogTarget } from '../logs/service-log.js';
import { Keeper } from '../succession/keeper.js';
import { keeperGone, keeperPid } from '../succession/keeper-link.js';
import { isStandby, waitAsStandby } from '../succession/standby.js';
import { parseHttpAddress, type HttpAddress } from '../observe/http-endpoint.js';
import { MasterFiles } from '../registry/master-files.js';
import { ensureNameFree } from '../registry/service-registry.js';
import { defaultPaths, pathsForSocket } from '../registry/paths.js';
import { DEFAULT_POLICY, type RestartPolicy } from '../pool/restart-policy.js';
import type { HealthOptions } from '../releases/health-gate.js';
import { MAX_HEALTHY_MS } from '../bus/order.js';
import { startDaemon } from './daemon.js';
import { bytes, integer, megabytes, milliseconds, parse, seconds } from './args.js';

/** A log file rotates at 10 MiB and keeps 5 files: at most 50 MiB per service. */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_MAX_FILES = 5;

export async function start(argv: string[]): Promise<number> {
  // `graft start ENTRY [options] -- ARGS…`: what follows `--` is the app's own process.argv.
  const split = argv.indexOf('--');
  const appArgs = split >= 0 ? argv.slice(split + 1) : [];
  const { values, positionals } = parse(
    'start',
    split >= 0 ? argv.slice(0, split) : argv,
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
      'log-dir': { type: 'string' },
      'log-max-size': { type: 'string' },
      'log-max-files': { type: 'string' },
      'max-memory': { type: 'string' },
      'restart-delay': { type: 'string' },
      'max-restarts': { type: 'string' },
      'min-uptime': { type: 'string' },
      metrics: { type: 'string' },
      dashboard: { type: 'string' },
      daemon: { type: 'boolean', short: 'd' },
      ready: { type: 'string' },
      sticky: { type: 'boolean' },
      'no-standby': { type: 'boolean' },
      'warm-workers': { type: 'string' },
      'keep-releases': { type: 'string' },
      'min-healthy-time': { type: 'string' },
      'health-url': { type: 'string' },
      'max-error-rate': { type: 'string' },
    },
    1,
  );
  const cwd = process.cwd();
  const entryArg = positionals[0];
  if (!entryArg) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft start needs an entry module, e.g. `graft start server.ts`');
  const entry = binTarget(resolve(cwd, entryArg));
  checkEntry(entryArg, entry);
  const port = integer('--port', values.port ?? process.env.PORT ?? '3000', 0, 65535)!;
  const workers = integer('--workers', values.workers, 1, 1024) ?? availableParallelism();
  const warmWorkers = integer('--warm-workers', values['warm-workers'], 0, 1024) ?? workers;
  const service = serviceName(values.name, entry);
  const bus = busOptions(values, service, cwd);
  // Detached, nothing reads stdout: lines go to files, in the per-user default place unless --log-dir says.
  if (values.daemon && values['log-dir'] === undefined) values['log-dir'] = defaultLogDir();
  // A standby waits without touching the disk: made now, the file would hide one removed under the master in control.
  const logs = logTarget(values, service, cwd, !isStandby());
  const policy = restartPolicy(values);
  const ready = readyMode(values.ready);
  const metrics = httpAddress('--metrics', values.metrics, port);
  const dashboard = httpAddress('--dashboard', values.dashboard, port);
  const paths = values.socket ? pathsForSocket(resolve(cwd, values.socket)) : defaultPaths(cwd, entryArg, service);
  // A master (or standby) whose keeper died while it loaded would otherwise become a second keeper and service.
  if (keeperGone()) {
    if (isStandby()) return 0;
    throw new GraftError('GRAFT_KEEPER_GONE', 'the keeper (the graft start process) that started this master died before it ran; not starting');
  }
  if (keeperPid() === undefined && !process.env.GRAFT_UPGRADE) {
    // Refused here, in one line, before a keeper or a master starts.
    MasterFiles.check(paths.socket);
    ensureNameFree(service);
    await MasterFiles.checkFree(paths.socket);
  }
  if (values.daemon) return startDaemon(split >= 0 ? argv.slice(0, split) : argv, appArgs, { service, logDir: resolve(cwd, values['log-dir']!), cwd });
  // `graft start` itself stays as the keeper; the master is its child (and so is every successor).
  if (keeperPid() === undefined && !process.env.GRAFT_UPGRADE) return new Keeper(service, { standby: values['no-standby'] !== true }).run();
  // Loaded here, not by the keeper: the keeper holds only what it needs for the service's life.
  const { Master } = await import('../master/master.js');
  // A standby master waits here, graft loaded and its workers' processes started, until the keeper needs it (its master crashed).
  let warm: { taken(): void } | undefined;
  if (isStandby() && warmWorkers > 0) {
    const [{ keepWarmWorkers }, { tsxInWorkers }] = await Promise.all([import('../pool/warm-workers.js'), import('../pool/entry-builds.js')]);
    warm = keepWarmWorkers(warmWorkers, { tsx: tsxInWorkers(entry, values.tsx === true), args: appArgs, service });
  }
  const takeover = isStandby() ? await waitAsStandby(service) : undefined;
  warm?.taken();
  const master = new Master({
    takeover,
    entry,
    args: appArgs,
    cwd,
    workers,
    port,
    paths,
    readyTimeoutMs: seconds('--timeout', values.timeout) ?? 30_000,
    ready,
    sticky: values.sticky === true,
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
    service,
    hostId: hostId(values['host-id']),
    fleet: values.fleet !== undefined ? parseFleetUrl(values.fleet) : undefined,
    bus,
    logs,
    policy,
    metrics,
    dashboard,
    keepReleases: integer('--keep-releases', values['keep-releases'], 1, 1000) ?? 5,
    health: healthOptions(values),
  });
  return master.run();
}

/** --log-dir DIR: one rotated file per service, checked writable now (`check`); without it, stdout and stderr. */
function logTarget(values: { 'log-dir'?: string | undefined; 'log-max-size'?: string | undefined; 'log-max-files'?: string | undefined }, service: string, cwd: string, check: boolean): LogTarget {
  const maxBytes = bytes('--log-max-size', values['log-max-size'], 1024, 1024 ** 4);
  const maxFiles = integer('--log-max-files', values['log-max-files'], 2, 1000);
  if (values['log-dir'] === undefined) {
    if (maxBytes !== undefined || maxFiles !== undefined) {
      throw new GraftError('GRAFT_BAD_ARGUMENT', `${maxBytes !== undefined ? '--log-max-size' : '--log-max-files'} applies to log files: give --log-dir DIR too (without it, lines go to stdout and stderr)`);
    }
    return { kind: 'stdio' };
  }
  const dir = resolve(cwd, values['log-dir']);
  const file = check ? checkLogDir(dir, service) : logFile(dir, service);
  return { kind: 'file', file, maxBytes: maxBytes ?? DEFAULT_LOG_MAX_BYTES, maxFiles: maxFiles ?? DEFAULT_LOG_MAX_FILES };
}

/** The health gate a deployed release must pass (graft deploy); without --min-healthy-time there is none. */
function healthOptions(values: { 'min-healthy-time'?: string | undefined; 'health-url'?: string | undefined; 'max-error-rate'?: string | undefined }): HealthOptions {
  const minHealthyMs = seconds('--min-healthy-time', values['min-healthy-time']) ?? 0;
  if (minHealthyMs > MAX_HEALTHY_MS) throw new GraftError('GRAFT_BAD_ARGUMENT', `--min-healthy-time is at most a day (86400 seconds), got ${values['min-healthy-time']}`);
  const url = values['health-url'];
  if (url !== undefined && !url.startsWith('/')) throw new GraftError('GRAFT_BAD_ARGUMENT', `--health-url is a path on the service's port, e.g. /healthz; got ${JSON.stringify(url)}`);
  const rate = values['max-error-rate'];
  let maxErrorRate = 0.1;
  if (rate !== undefined) {
    const n = rate.endsWith('%') ? Number(rate.slice(0, -1)) / 100 : Number(rate);
    if (rate.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new GraftError('GRAFT_BAD_ARGUMENT', `--max-error-rate is a share of 5xx responses, 0 to 1 or 0% to 100%; got ${JSON.stringify(rate)}`);
    maxErrorRate = n;
  }
  if (minHealthyMs === 0 && (url !== undefined || rate !== undefined)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${url !== undefined ? '--health-url' : '--max-error-rate'} applies during the health gate: give --min-healthy-time SECONDS too`);
  }
  return { minHealthyMs, url, maxErrorRate };
}

/** PM2's restart flags; --min-uptime only decides which crashes count against --max-restarts. */
function restartPolicy(values: { 'max-memory'?: string | undefined; 'restart-delay'?: string | undefined; 'max-restarts'?: string | undefined; 'min-uptime'?: string | undefined }): RestartPolicy {
  const maxRestarts = integer('--max-restarts', values['max-restarts'], 0, 1_000_000);
  if (values['min-uptime'] !== undefined && maxRestarts === undefined) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', '--min-uptime decides which crashes count against --max-restarts; give --max-restarts N too');
  }
  return {
    maxMemoryBytes: megabytes('--max-memory', values['max-memory']),
    restartDelayMs: milliseconds('--restart-delay', values['restart-delay']) ?? DEFAULT_POLICY.restartDelayMs,
    maxRestarts,
    minUptimeMs: milliseconds('--min-uptime', values['min-uptime'], 1) ?? DEFAULT_POLICY.minUptimeMs,
  };
}

/** --bus (repeatable) needs --bus-key; --name / --host-id default to the entry's and the machine's names. */
function busOptions(values: { bus?: string[] | undefined; 'bus-key'?: string | undefined; 'host-id'?: string | undefined }, service: string, cwd: string): BusOptions | undefined {
  if (!values.bus?.length) {
    if (values['bus-key'] !== undefined) throw new GraftError('GRAFT_BAD_ARGUMENT', '--bus-key is for bus orders; give --bus nats://… or --bus amqp://… too');
    return undefined;
  }
  const urls = values.bus.map((u) => parseBusUrl(u));
  return { urls, key: orderKeyFor('check', values['bus-key'], '--bus', cwd), service, host: hostId(values['host-id']) };
}

/** --metrics / --dashboard: not the app's own port, which the workers listen on. */
function httpAddress(flag: string, value: string | undefined, appPort: number): HttpAddress | undefined {
  if (value === undefined) return undefined;
  const address = parseHttpAddress(flag, value);
  if (address.port === appPort) throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} ${address.display}: port ${appPort} is the app's port (--port); give ${flag} a port of its own`);
  return address;
}

/** --ready listen|load|message|auto. */
function readyMode(value: string | undefined): ReadyMode {
  if (value === undefined) return 'auto';
  if ((READY_MODES as readonly string[]).includes(value)) return value as ReadyMode;
  throw new GraftError('GRAFT_BAD_ARGUMENT', `--ready must be one of ${READY_MODES.join(', ')}, got ${JSON.stringify(value)}`);
}

/**
 * An entry that is itself a symbolic link (a package's bin, `node_modules/.bin/next`)
 * is the JavaScript file it links to; links in the directories above it (a
 * `current` release link) stay as given, so a reload follows them.
 */
function binTarget(entry: string): string {
  for (let hops = 0; hops < 8; hops++) {
    try {
      if (!lstatSync(entry).isSymbolicLink()) return entry;
      entry = resolve(dirname(entry), readlinkSync(entry));
    } catch {
      return entry;
    }
  }
  return entry;
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

