import { linkSync, mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { replacePrivateFile } from '../core/private-file.js';
import { join } from 'node:path';
import { GraftError, errorMessage } from '../core/errors.js';
import type { LogTarget } from '../logs/service-log.js';
import { masterAlive, runtimeDir } from './paths.js';

/**
 * The services of this user, by name: one record per running service in
 * `<runtime dir>/services/<name>.json`, written when its master takes its
 * control socket, rewritten by the successor at `graft upgrade`, removed at
 * stop. A name belongs to one live master; a record whose master is gone is
 * stale and taken over silently.
 */
export interface ServiceRecord {
  name: string;
  /** The master that holds the name now. */
  pid: number;
  socket: string;
  entry: string;
  cwd: string;
  /** The port it was started on (`graft ls` shows the live one). */
  port: number;
  /** When the service started (kept across `graft upgrade`). */
  startedAt: string;
  logs: LogTarget;
}

export function servicesDir(): string {
  return join(runtimeDir(), 'services');
}

function recordPath(name: string): string {
  return join(servicesDir(), `${name}.json`);
}

export function readRecord(name: string): ServiceRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(name), 'utf8')) as ServiceRecord;
  } catch {
    return undefined; // absent, half-written by a crash, or foreign
  }
}

/** The record of a live master by that name, or undefined. */
export function findService(name: string): ServiceRecord | undefined {
  const record = readRecord(name);
  return record && masterAlive(record.pid) ? record : undefined;
}

/** Every service with a live master, by name. */
export function listServices(): ServiceRecord[] {
  let names: string[];
  try {
    names = readdirSync(servicesDir());
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => readRecord(n.slice(0, -5)))
    .filter((r): r is ServiceRecord => r !== undefined && masterAlive(r.pid))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Refuse early (before config and workers) if a live master other than `predecessor` holds the name. */
export function ensureNameFree(name: string, predecessor?: number): void {
  const held = readRecord(name);
  if (held && held.pid !== process.pid && held.pid !== predecessor && masterAlive(held.pid)) throw taken(held);
}

/**
 * Take the name for this master. The record is linked into place, which
 * fails if one exists, so of two masters starting with one name only one
 * gets it. A master's successor (or the master itself, taking back control)
 * overwrites its record; a stale one is removed and the name taken.
 */
export function claimName(record: Omit<ServiceRecord, 'startedAt'>, predecessor?: number): ServiceRecord {
  const dir = servicesDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new GraftError('GRAFT_SOCKET_UNUSABLE', `cannot create ${dir} for the service registry: ${errorMessage(err)}; set GRAFT_RUNTIME_DIR to a writable directory`, { cause: err });
  }
  const path = recordPath(record.name);
  for (let attempt = 0; ; attempt++) {
    const held = readRecord(record.name);
    if (held && (held.pid === process.pid || held.pid === predecessor)) {
      const full = { ...record, startedAt: held.startedAt };
      replace(path, full);
      return full;
    }
    if (held && masterAlive(held.pid)) throw taken(held);
    if (held || attempt > 0) {
      try {
        unlinkSync(path); // stale: its master is gone
      } catch {
        // removed by another master taking the name
      }
    }
    const full = { ...record, startedAt: new Date().toISOString() };
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(full) + '\n', { mode: 0o600 });
    try {
      linkSync(tmp, path);
      return full;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw GraftError.wrap(err, `cannot write the service record ${path}`);
    } finally {
      unlinkSync(tmp);
    }
  }
}

/** Remove the record, but only if it still names this master (a successor may hold it now). */
export function releaseName(name: string): void {
  if (readRecord(name)?.pid !== process.pid) return;
  try {
    unlinkSync(recordPath(name));
  } catch {
    // already gone
  }
}

function replace(path: string, record: ServiceRecord): void {
  replacePrivateFile(path, JSON.stringify(record) + '\n');
}

function taken(held: ServiceRecord): GraftError {
  return new GraftError(
    'GRAFT_NAME_TAKEN',
    `the name ${held.name} is taken by the graft master ${held.pid} running ${held.entry} (from ${held.cwd}); start this one with another --name, or stop that one first (\`graft stop ${held.name}\`)`,
  );
}
