import { mkdirSync, readFileSync } from 'node:fs';
import { replacePrivateFile } from '../../core/private-file.js';
import { join } from 'node:path';
import { shortHash } from '../../core/hash.js';

/** What a store source holds: the store's keys under its prefix, as text, at one revision. */
export interface StoreSnapshot {
  /** etcd revision, NATS stream sequence, Redis content hash, each Apollo namespace's releaseKey and notification id. */
  revision: string;
  /** Identifies the store's history (a NATS stream's creation time): a different epoch means the store was recreated. */
  epoch?: string;
  /** Store key → value text. */
  entries: Record<string, string>;
  /** What the store holds cannot be a config layer (a Redis key of another type): loading it fails with this. */
  problem?: string;
}

export interface CachedSnapshot extends StoreSnapshot {
  source: string;
  savedAt: string;
}

/**
 * The last good snapshot of one store source on disk, so that a master can
 * start while the store is down. One JSON file per source address, written to
 * a temporary name and renamed, so a crash leaves the old file or the new one.
 */
export class StoreCache {
  readonly file: string;

  constructor(dir: string, source: string) {
    this.file = join(dir, `graft-store-${shortHash(source)}.json`);
  }

  read(): CachedSnapshot | undefined {
    try {
      const cached = JSON.parse(readFileSync(this.file, 'utf8')) as CachedSnapshot;
      if (typeof cached.revision !== 'string' || !cached.entries || typeof cached.entries !== 'object') return undefined;
      return cached;
    } catch {
      return undefined; // none yet, or a foreign file: as good as none
    }
  }

  /** Throws when the directory cannot be written; the caller logs it and goes on. */
  write(source: string, snapshot: StoreSnapshot): void {
    const dir = join(this.file, '..');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const cached: CachedSnapshot = { source, savedAt: new Date().toISOString(), ...snapshot };
    replacePrivateFile(this.file, JSON.stringify(cached));
  }
}
