import { hostname } from 'node:os';
import { basename, extname } from 'node:path';
import { checkName } from './order.js';

/** A name as a subject token: other characters become `-`, at most 64. */
export function sanitizeName(text: string): string {
  const name = text.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
  return name || 'graft';
}

/** `--name`, or the entry's file name without its extension. */
export function serviceName(given: string | undefined, entry: string): string {
  return given !== undefined ? checkName('--name', given) : sanitizeName(basename(entry, extname(entry)));
}

/** `--host-id`, or this machine's host name. */
export function hostId(given: string | undefined): string {
  return given !== undefined ? checkName('--host-id', given) : sanitizeName(hostname());
}
