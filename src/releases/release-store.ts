import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync } from 'node:fs';
import { userInfo, hostname } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { extract } from 'tar';
import { GraftError, errorMessage } from '../core/errors.js';
import { replacePrivateFile } from '../core/private-file.js';
import type { Release } from '../pool/worker-pool.js';

/** What a release went through: staged, then live; then previous (a later one went live), failed (it never served) or rolled back (it served and was unhealthy). */
export type ReleaseOutcome = 'staged' | 'live' | 'previous' | 'failed' | 'rolled back';

export interface ReleaseRecord {
  id: string;
  /** What the operator deployed: the directory or tarball given to `graft deploy`. */
  from: string;
  stagedAt: string;
  /** user@host of whoever deployed it. */
  by: string;
  outcome: ReleaseOutcome;
  /** When it last went live. */
  liveAt?: string;
  /** When it last failed or was rolled back. */
  endedAt?: string;
  /** The config version it went live with. */
  configVersion?: number;
  /** The `graft config apply --set` layer it last served with: what `graft rollback --with-config` puts back. */
  overrides?: Record<string, unknown>;
  /** Why it failed or was rolled back. */
  reason?: string;
}


/** Files no release holds: packages resolve from the service's directory (the store lives inside it), and graft's own state. */
const SKIPPED = new Set(['node_modules', '.git', '.graft']);

/**
 * The releases of one service: each an immutable copy of the service's files
 * under `<service dir>/.graft/releases/<service>/<id>`, named by the digest of
 * its files (the same files give the same id), made read-only, and checked
 * against that digest again before every generation that runs it, so a
 * release edited by hand (root ignores the mode) is refused, never run.
 * Packages are not copied: a release resolves `node_modules` up the tree,
 * from the service's directory, as a swapped module shares them.
 *
 * `--keep-releases N` keeps the last N good releases (live or previous);
 * failed and rolled-back ones never push a good one out, and the newest few
 * of them are kept for their record.
 */
export class ReleaseStore {
  private readonly index: string;
  private records: ReleaseRecord[];

  constructor(
    readonly root: string,
    /** The service's entry, relative to the service's directory: every release must hold it. */
    private readonly entry: string,
    private readonly keep: number,
  ) {
    this.index = join(root, 'releases.json');
    this.records = readIndex(this.index);
  }

  /**
   * Copy a directory or unpack a tarball into the store and name it by its
   * digest; an id staged before is reused. `expect`: the id an order named
   * (the files fetched for it must digest to it, or they are refused).
   */
  async stage(source: string, options: { expect?: string; from?: string } = {}): Promise<{ release: Release; existed: boolean }> {
    const { expect } = options;
    const from = options.from ?? source;
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    const staging = join(this.root, `.staging-${process.pid}-${Date.now()}`);
    try {
      const { root: top, id } = await prepareRelease(source, this.entry, staging);
      if (expect !== undefined && id !== expect) {
        throw new GraftError('GRAFT_RELEASE_TAMPERED', `the files fetched as release ${expect} digest to ${id}: refused, nothing of them runs`);
      }
      const dir = this.dir(id);
      let existed = existsSync(dir);
      if (existed && digest(dir) !== id) {
        // The copy here was edited by hand: the same files deployed again put it right.
        removeTree(dir);
        rmSync(this.buildDir(id), { recursive: true, force: true });
        existed = false;
      }
      if (!existed) {
        renameSync(top, dir);
        readOnly(dir);
      }
      const record = this.records.find((r) => r.id === id);
      if (!record) this.records.push({ id, from, stagedAt: new Date().toISOString(), by: `${userInfo().username}@${hostname()}`, outcome: 'staged' });
      else if (record.outcome === 'failed' || record.outcome === 'rolled back' || record.outcome === 'staged') Object.assign(this.touch(id)!, { from, outcome: 'staged' as const, stagedAt: new Date().toISOString(), reason: undefined });
      this.save();
      return { release: this.release(id), existed };
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }

  /** Whether the store holds release `id` (its files; whether they are intact is verify's business). */
  has(id: string): boolean {
    return existsSync(this.dir(id));
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  /** Where a release's TypeScript entry is compiled once and kept (a rollback runs it as built). */
  buildDir(id: string): string {
    return join(this.root, `${id}.build`);
  }

  release(id: string): Release {
    return { id, dir: this.dir(id), entry: join(this.dir(id), this.entry) };
  }

  /**
   * A release by id (a unique prefix will do); GRAFT_RELEASE_UNKNOWN otherwise.
   * Its files are checked against the id once, by the generation that runs it
   * (service-releases.ts), not here as well: a digest reads every file.
   */
  resolve(id: string): Release {
    const matches = this.records.filter((r) => r.id.startsWith(id) && existsSync(this.dir(r.id)));
    if (matches.length !== 1) {
      const known = this.records.map((r) => r.id).join(', ') || 'none';
      throw new GraftError('GRAFT_RELEASE_UNKNOWN', `${matches.length ? `release id ${id} is ambiguous` : `no release ${id} in ${this.root}`} (releases: ${known}); \`graft releases\` lists them`);
    }
    return this.release(matches[0]!.id);
  }

  /** Refuse a release whose files are no longer the ones it was staged with. */
  verify(id: string): void {
    const dir = this.dir(id);
    if (!existsSync(dir)) throw new GraftError('GRAFT_RELEASE_UNKNOWN', `release ${id} is gone from ${this.root}; deploy it again`);
    const now = digest(dir);
    if (now !== id) {
      throw new GraftError(
        'GRAFT_RELEASE_TAMPERED',
        `release ${id} in ${this.root} was changed after it was staged (its files now digest to ${now}); it is not run: deploy the release's files again to put it right (the live release keeps serving; a master that cannot start on it starts from the entry on disk once ${join(this.root, 'releases.json')} is moved away)`,
      );
    }
  }

  /** Newest first: the records are kept in the order of their last event (staged, live, ended), not by clock, which ties within a millisecond. */
  list(): ReleaseRecord[] {
    return this.records.map((r) => ({ ...r })).reverse();
  }

  /** The release that served when the last master of the service stopped: the next one starts on it. */
  live(): ReleaseRecord | undefined {
    return this.records.find((r) => r.outcome === 'live' && existsSync(this.dir(r.id)));
  }

  /** The newest good release other than `id`: where a rollback goes. */
  previousGood(id: string | undefined): ReleaseRecord | undefined {
    return [...this.records].reverse().find((r) => r.id !== id && (r.outcome === 'previous' || r.outcome === 'live') && existsSync(this.dir(r.id)));
  }

  /** `id` serves now: the one that served before is previous. */
  /** `protect`: releases no prune may remove now (the one a health gate in flight would roll back to). */
  wentLive(id: string, config: { version?: number | undefined; overrides?: Record<string, unknown> | undefined }, protect: Array<string | undefined> = []): void {
    for (const r of this.records) if (r.outcome === 'live' && r.id !== id) r.outcome = 'previous';
    const record = this.touch(id);
    if (record) {
      Object.assign(record, {
        outcome: 'live' as const,
        liveAt: new Date().toISOString(),
        reason: undefined,
        ...(config.version !== undefined ? { configVersion: config.version } : {}),
        ...(config.overrides !== undefined ? { overrides: config.overrides } : {}),
      });
    }
    this.prune(protect);
  }

  /** The config the live release serves with now (a config change while it is live). */
  configChanged(id: string, config: { version: number; overrides: Record<string, unknown> }): void {
    const record = this.records.find((r) => r.id === id && r.outcome === 'live');
    if (!record || (record.configVersion === config.version && JSON.stringify(record.overrides) === JSON.stringify(config.overrides))) return;
    Object.assign(record, { configVersion: config.version, overrides: config.overrides });
    this.save();
  }

  record(id: string): ReleaseRecord | undefined {
    const r = this.records.find((x) => x.id === id);
    return r && { ...r };
  }

  /** `id` never served (its generation did not boot) or served and was rolled back. */
  ended(id: string, outcome: 'failed' | 'rolled back', reason: string): void {
    const record = this.records.find((r) => r.id === id);
    // A good release deployed again that did not boot this time (a port, a store down) stays good: still a rollback target.
    if (record && !(outcome === 'failed' && record.outcome === 'previous')) Object.assign(this.touch(id)!, { outcome, reason, endedAt: new Date().toISOString() });
    this.prune();
  }

  /** The record of `id`, moved to the end: its event is the newest. */
  private touch(id: string): ReleaseRecord | undefined {
    const at = this.records.findIndex((r) => r.id === id);
    if (at < 0) return undefined;
    const [record] = this.records.splice(at, 1);
    this.records.push(record!);
    return record;
  }

  /**
   * Keep the last `keep` good releases, and as many others (failed, rolled
   * back, staged and never deployed); the rest go, files and record. The live
   * release and `protect` never go. Saves the list.
   */
  prune(protect: Array<string | undefined> = []): void {
    const newestFirst = [...this.records].reverse();
    const good = newestFirst.filter((r) => r.outcome === 'live' || r.outcome === 'previous');
    const bad = newestFirst.filter((r) => r.outcome !== 'live' && r.outcome !== 'previous');
    const gone = new Set([...good.slice(this.keep), ...bad.slice(this.keep)].filter((r) => r.outcome !== 'live' && !protect.includes(r.id)).map((r) => r.id));
    for (const id of gone) {
      removeTree(this.dir(id));
      rmSync(this.buildDir(id), { recursive: true, force: true });
    }
    this.records = this.records.filter((r) => !gone.has(r.id));
    this.save();
  }

  private save(): void {
    replacePrivateFile(this.index, JSON.stringify(this.records, null, 2) + '\n');
  }
}

function readIndex(file: string): ReleaseRecord[] {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ReleaseRecord[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new GraftError('GRAFT_RELEASE_SOURCE', `${file} cannot be read (${errorMessage(err)}); move it away to start a new release list`);
  }
}

/**
 * The files of a release, copied or unpacked into `staging` (a new folder),
 * and their digest: the release's id. Where the service's entry is found
 * decides the release's top (a tarball's one folder, as npm pack's `package/`).
 */
export async function prepareRelease(source: string, entry: string, staging: string): Promise<{ root: string; id: string }> {
  if (!existsSync(source)) throw new GraftError('GRAFT_RELEASE_SOURCE', `${source} does not exist: give graft deploy a directory or a .tar.gz of the service's files`);
  mkdirSync(staging);
  if (statSync(source).isDirectory()) copyTree(source, staging);
  else await unpack(source, staging);
  const root = releaseRoot(staging, entry, source);
  checkLinks(root, root, source);
  return { root, id: digest(root) };
}

/** A link that is absolute or leads out of the release would let files outside it change what runs: refused. */
function checkLinks(root: string, at: string, source: string): void {
  for (const name of readdirSync(at)) {
    const path = join(at, name);
    const stat = lstatSync(path);
    if (stat.isDirectory()) checkLinks(root, path, source);
    else if (stat.isSymbolicLink()) {
      const target = readlinkSync(path);
      const rel = relative(root, resolve(dirname(path), target));
      if (isAbsolute(target) || rel.startsWith('..') || isAbsolute(rel)) {
        throw new GraftError('GRAFT_RELEASE_SOURCE', `${source}: the link ${relative(root, path)} points to ${target}, outside the release; a release holds its files, not links out of it`);
      }
    }
  }
}

function copyTree(from: string, to: string): void {
  cpSync(from, to, { recursive: true, filter: (src) => src === from || !SKIPPED.has(basename(src)), verbatimSymlinks: true });
}

async function unpack(file: string, to: string): Promise<void> {
  try {
    await extract({ file, cwd: to, strict: true, filter: (path) => !path.split('/').some((part) => SKIPPED.has(part)) });
  } catch (err) {
    throw new GraftError('GRAFT_RELEASE_SOURCE', `${file} is neither a directory nor a tarball that unpacks (${errorMessage(err)})`);
  }
}

/** The folder of the unpacked files that holds the entry: the top, or its one folder (an `npm pack` tarball's `package/`). */
function releaseRoot(staging: string, entry: string, source: string): string {
  if (existsSync(join(staging, entry))) return staging;
  const top = readdirSync(staging);
  if (top.length === 1 && lstatSync(join(staging, top[0]!)).isDirectory() && existsSync(join(staging, top[0]!, entry))) return join(staging, top[0]!);
  throw new GraftError('GRAFT_RELEASE_NO_ENTRY', `${source} does not hold the service's entry ${entry}; a release holds the service's files as they are laid out in its directory`);
}

/**
 * sha256 over every entry's kind, path and content, in path order, each
 * part preceded by its length (no two trees give the same bytes), cut to 32
 * hex digits. Nothing is skipped here: a node_modules or .git added to a
 * release after staging changes its digest.
 */
function digest(dir: string): string {
  const hash = createHash('sha256');
  const part = (bytes: string | Buffer) => {
    const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    hash.update(`${b.length}:`);
    hash.update(b);
  };
  const walk = (at: string) => {
    for (const name of readdirSync(at).sort()) {
      const path = join(at, name);
      const rel = relative(dir, path).split(sep).join('/');
      const stat = lstatSync(path);
      if (stat.isDirectory()) {
        part('d');
        part(rel);
        walk(path);
      } else if (stat.isSymbolicLink()) {
        part('l');
        part(rel);
        part(readlinkSync(path));
      } else {
        part(stat.mode & 0o111 ? 'x' : 'f');
        part(rel);
        part(readFileSync(path));
      }
    }
  };
  walk(dir);
  return hash.digest('hex').slice(0, 32);
}

function readOnly(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) continue;
    if (stat.isDirectory()) readOnly(path);
    else chmodSync(path, stat.mode & 0o555);
  }
  chmodSync(dir, 0o555);
}

function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  const writable = (at: string) => {
    chmodSync(at, 0o755);
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (lstatSync(path).isDirectory()) writable(path);
    }
  };
  writable(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** The service's entry as a release holds it; an entry outside the service's directory cannot be released. */
export function entryInRelease(cwd: string, entry: string): string | undefined {
  const rel = relative(cwd, entry);
  return rel.startsWith('..') || isAbsolute(rel) ? undefined : rel;
}
