import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { NAME_PATTERN } from '../bus/names.js';
import { GraftError } from '../core/errors.js';
import { pathsForSocket, type MasterPaths } from '../registry/paths.js';
import { findService, listServices, type ServiceRecord } from '../registry/service-registry.js';

export interface Target {
  socket?: string | undefined;
  /** `--name NAME`: a service by name only. */
  name?: string | undefined;
  /** The positional: a service's name, or its entry (a path, relative to cwd or absolute). */
  target?: string | undefined;
  cwd?: string;
}

/** A service name has no dot and no slash; an entry is a path. */
export function looksLikeName(text: string): boolean {
  return NAME_PATTERN.test(text);
}

/**
 * Which master a command talks to, from any directory: --socket; else a
 * service by name (--name, or the positional); else by its entry (the
 * registry knows every master's entry as an absolute path); else the only
 * master started from the current directory. Every master holds a name in
 * the service registry while it runs (it cannot start without one), so the
 * registry is the one place to look.
 */
export function locateMaster(options: Target): MasterPaths {
  const cwd = options.cwd ?? process.cwd();
  if (options.socket) return pathsForSocket(resolve(cwd, options.socket));
  if (options.name !== undefined) return pathsForSocket(byName(options.name).socket);
  const target = options.target;
  if (target !== undefined) {
    if (looksLikeName(target)) {
      const service = findService(target);
      if (service) return pathsForSocket(service.socket);
    }
    const entry = resolve(cwd, target);
    const matches = listServices().filter((s) => s.entry === entry);
    if (matches.length === 1) return pathsForSocket(matches[0]!.socket);
    if (matches.length > 1) {
      throw new GraftError('GRAFT_AMBIGUOUS_MASTER', `${matches.length} services run ${entry} (${matches.map((s) => s.name).join(', ')}); name one of them`);
    }
    if (looksLikeName(target) && !existsSync(entry)) throw noService(`no running service is named ${target}`);
    throw noService(`no graft master runs ${entry}`);
  }
  const here = listServices().filter((s) => s.cwd === resolve(cwd));
  if (here.length === 1) return pathsForSocket(here[0]!.socket);
  if (here.length === 0) {
    const names = listServices().map((s) => s.name);
    const hint = names.length ? `running: ${names.join(', ')}: name one (\`graft status ${names[0]}\`)` : 'start one with `graft start <entry>`';
    throw new GraftError('GRAFT_NO_MASTER', `no graft master was started from ${cwd}; ${hint}, or pass --socket`);
  }
  throw new GraftError('GRAFT_AMBIGUOUS_MASTER', `${here.length} graft masters were started from ${cwd} (${here.map((s) => s.name).join(', ')}); name one of them or pass --socket`);
}

/** The live service by that name, or GRAFT_NO_SERVICE listing the running ones. */
export function byName(name: string): ServiceRecord {
  const service = findService(name);
  if (!service) throw noService(`no running service is named ${name}`);
  return service;
}

function noService(what: string): GraftError {
  return new GraftError('GRAFT_NO_SERVICE', `${what}; ${running()}`);
}

function running(): string {
  const names = listServices().map((s) => s.name);
  return names.length ? `running: ${names.join(', ')} (see \`graft ls\`)` : 'no service is running';
}
