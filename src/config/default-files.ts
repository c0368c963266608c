import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The documented default: the first of these in the working directory, when no --config is given. */
export const DEFAULT_CONFIG_FILES = ['graft.config.yaml', 'graft.config.yml', 'graft.config.json', 'graft.config.toml'];

export function defaultConfigFiles(cwd: string): string[] {
  const found = DEFAULT_CONFIG_FILES.map((f) => join(cwd, f)).find((f) => existsSync(f));
  return found ? [resolve(found)] : [];
}
