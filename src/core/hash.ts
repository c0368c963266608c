import { createHash } from 'node:crypto';

/**
 * sha256 cut to 12 hex digits: graft's short name for content (a config, a
 * store snapshot, a code version) and for a place (a socket's directory, a
 * cache file). 48 bits keep accidental collisions out of reach for the few
 * thousand things one machine names, and stay short enough to read in a table.
 * Several parts hash as their concatenation.
 */
export function shortHash(data: string | Uint8Array | ReadonlyArray<string | Uint8Array>): string {
  const hash = createHash('sha256');
  for (const part of typeof data === 'string' || data instanceof Uint8Array ? [data] : data) hash.update(part);
  return hash.digest('hex').slice(0, 12);
}
