import { hostname } from 'node:os';
import { basename, extname } from 'node:path';
import { GraftError } from '../core/errors.js';

/**
 * Service and host names are subject tokens, queue names and registry file
 * names: letters, digits, `_` and `-`, at most 64. A name has no dot and no
 * slash, so it is never mistaken for an entry's path.
 */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The value, if it is a well-formed name; else GRAFT_BAD_ARGUMENT naming the flag it came from. */
export function validName(flag: string, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} ${JSON.stringify(value)} may hold only letters, digits, _ and - (at most 64)`);
  }
  return value;
}

/** A name as a subject token: other characters become `-`, at most 64. */
export function sanitizeName(text: string): string {
  const name = text.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
  return name || 'graft';
}

/** `--name`, or the entry's file name without its extension. */
export function serviceName(given: string | undefined, entry: string): string {
  return given !== undefined ? validName('--name', given) : sanitizeName(basename(entry, extname(entry)));
}

/** `--host-id`, or this machine's host name. */
export function hostId(given: string | undefined): string {
  return given !== undefined ? validName('--host-id', given) : sanitizeName(hostname());
}
