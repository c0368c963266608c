import { GraftError } from '../../core/errors.js';
import { coerce } from '../formats.js';
import { setPath, splitPath } from '../key-path.js';
import type { ConfigSource } from './source.js';

/** `--set db.pool.max=20` on the command line (or on `graft config apply`): the top layer. */
export class OverrideSource implements ConfigSource {
  private readonly data: Record<string, unknown> = {};

  constructor(
    readonly name: string,
    assignments: string[] = [],
  ) {
    this.set(assignments);
  }

  /** Validates every assignment first, so a bad one changes nothing. */
  set(assignments: string[]): void {
    const parsed = assignments.map((a) => {
      const eq = a.indexOf('=');
      if (eq <= 0) throw new GraftError('GRAFT_BAD_ARGUMENT', `--set needs key.path=value, got ${JSON.stringify(a)}`);
      return [splitPath(a.slice(0, eq)), coerce(a.slice(eq + 1))] as const;
    });
    for (const [path, value] of parsed) setPath(this.data, path, value);
  }

  /** Remove overrides again, so the lower layers (the files) decide those keys. */
  unset(paths: string[]): void {
    for (const path of paths) {
      const parts = splitPath(path);
      let cur: Record<string, unknown> | undefined = this.data;
      for (const key of parts.slice(0, -1)) {
        const next: unknown = cur?.[key];
        cur = next && typeof next === 'object' ? (next as Record<string, unknown>) : undefined;
      }
      if (cur) delete cur[parts.at(-1)!];
    }
  }

  save(): Record<string, unknown> {
    return structuredClone(this.data);
  }

  restore(saved: Record<string, unknown>): void {
    this.clear();
    Object.assign(this.data, structuredClone(saved));
  }

  clear(): void {
    for (const key of Object.keys(this.data)) delete this.data[key];
  }

  async load(): Promise<Record<string, unknown>> {
    return structuredClone(this.data);
  }
}
