import { coerce, envKeyPath } from '../formats.js';
import { setPath } from '../key-path.js';
import type { ConfigSource } from './source.js';

/** The documented prefix: `CONFIG__DB__POOL_SIZE=20` sets `db.poolSize` to 20. */
export const ENV_PREFIX = 'CONFIG__';

/** Environment variables with the prefix; `__` nests, segments become camelCase, values parse as JSON when they can. */
export class EnvSource implements ConfigSource {
  readonly name = 'env';

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly prefix = ENV_PREFIX,
  ) {}

  async load(): Promise<Record<string, unknown>> {
    return this.loadSync();
  }

  loadSync(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(this.env)) {
      if (!name.startsWith(this.prefix) || value === undefined) continue;
      const path = envKeyPath(name.slice(this.prefix.length));
      if (path.length > 0) setPath(out, path, coerce(value));
    }
    return out;
  }
}
