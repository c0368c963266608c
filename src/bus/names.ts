import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join, sep } from 'node:path';
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

/**
 * `--name`, or by default `<package>-<file>`: the name in the entry's nearest
 * package.json (outside node_modules: a package's bin belongs to the project
 * that installed it; a scope becomes a prefix, `@acme/api` is `acme-api`) and
 * the entry's file name without extension, or the package name alone when the
 * file is `index` or bears the package's name. Without a package.json (or a
 * name in the nearest one), the file name.
 */
export function serviceName(given: string | undefined, entry: string): string {
  if (given !== undefined) return validName('--name', given);
  const file = basename(entry, extname(entry));
  const pkg = packageName(entry);
  if (!pkg) return sanitizeName(file);
  return sanitizeName(file === 'index' || file === pkg || sanitizeName(file) === pkg ? pkg : `${pkg}-${file}`);
}

function packageName(entry: string): string | undefined {
  const inModules = entry.indexOf(`${sep}node_modules${sep}`);
  let dir = inModules >= 0 ? entry.slice(0, inModules) : dirname(entry);
  for (;;) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      // no package.json here: look further up
    }
    if (text !== undefined) {
      // The nearest package.json decides, even one without a name (or a broken one): then the file name does.
      let name: unknown;
      try {
        name = (JSON.parse(text) as { name?: unknown }).name;
      } catch {
        return undefined;
      }
      return typeof name === 'string' && name.length ? sanitizeName(name.replace(/^@/, '').replace('/', '-')) : undefined;
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** `--host-id`, or this machine's host name. */
export function hostId(given: string | undefined): string {
  return given !== undefined ? validName('--host-id', given) : sanitizeName(hostname());
}
