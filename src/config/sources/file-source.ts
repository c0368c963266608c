import { lstatSync, readFileSync, readlinkSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { GraftError } from '../../core/errors.js';
import { formatOf, parseConfigText } from '../formats.js';
import type { ConfigSource } from './source.js';

export const DEFAULT_MAX_BYTES = 1024 * 1024;

/**
 * One config file (JSON, YAML, TOML or .env). Watching follows what editors and
 * platforms do to a file: the parent directory is watched, not the file, so an
 * atomic rename save (vim, VS Code), a delete and recreate, and a Kubernetes
 * ConfigMap's `..data` symlink swap are all seen. Only events naming the file
 * (or `..data`) count, so a log file written beside the config is not a change;
 * the loader re-reads after a quiet period and the content hash decides (the
 * same content saved again makes no version).
 */
export class FileSource implements ConfigSource {
  readonly name: string;
  readonly path: string;

  constructor(
    path: string,
    private readonly maxBytes = DEFAULT_MAX_BYTES,
  ) {
    this.path = resolve(path);
    this.name = `file:${this.path}`;
    if (!formatOf(this.path)) {
      throw new GraftError('GRAFT_CONFIG_PARSE', `${this.path}: unknown config format; name it .json, .yaml, .yml, .toml or .env`);
    }
  }

  /** Synchronous underneath: config files are small, and a process without a master loads before its first read. */
  async load(): Promise<Record<string, unknown>> {
    return this.loadSync();
  }

  loadSync(): Record<string, unknown> {
    const file = this.path;
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new GraftError('GRAFT_CONFIG_UNREADABLE', `${file} is not a regular file; point --config at a file`);
      size = st.size;
    } catch (err) {
      if (err instanceof GraftError) throw err;
      throw this.describeMissing(err as NodeJS.ErrnoException);
    }
    if (size > this.maxBytes) {
      throw new GraftError(
        'GRAFT_CONFIG_TOO_LARGE',
        `${file} is ${(size / 1048576).toFixed(1)} MB; config files are limited to ${(this.maxBytes / 1048576).toFixed(1)} MB`,
      );
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw this.describeMissing(err as NodeJS.ErrnoException);
    }
    return parseConfigText(text, file, formatOf(file)!);
  }

  private describeMissing(err: NodeJS.ErrnoException): GraftError {
    const file = this.path;
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      return new GraftError('GRAFT_CONFIG_UNREADABLE', `${file}: permission denied; let the graft master's user read it`);
    }
    if (err.code === 'ENOENT') {
      let link = false;
      try {
        link = lstatSync(file).isSymbolicLink();
      } catch {
        // not there at all
      }
      if (link) {
        let target = '?';
        try {
          target = readlinkSync(file);
        } catch {
          // raced with a delete
        }
        return new GraftError('GRAFT_CONFIG_UNREADABLE', `${file} is a symlink to ${target}, which does not exist`);
      }
      return new GraftError('GRAFT_CONFIG_UNREADABLE', `${file} does not exist (deleted or not yet written)`);
    }
    return new GraftError('GRAFT_CONFIG_UNREADABLE', `${file} cannot be read: ${err.code ?? err.message}`);
  }

  watch(onChange: (source: string) => void): () => void {
    const dir = dirname(this.path);
    const name = basename(this.path);
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dir, { persistent: false }, (_event, filename) => {
        // null: the platform did not say which entry changed.
        if (filename !== null && filename !== name && filename !== '..data') return;
        onChange(this.name);
      });
      watcher.on('error', () => {});
    } catch {
      // The directory is missing: the next load reports the file as missing.
    }
    return () => watcher?.close();
  }
}

