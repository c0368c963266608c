import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** This package's version (src/ and dist/ are both one level below package.json). */
export function graftVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
