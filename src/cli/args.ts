import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GraftError } from '../core/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs, with its errors turned into graft's one-line coded errors. */
export interface Parsed<O extends Options> {
  values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K]['multiple'] extends true ? string[] : string };
  positionals: string[];
}

export function parse<O extends Options>(command: string, argv: string[], options: O, maxPositionals: number): Parsed<O> {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), allowPositionals: true, options, strict: true });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(message)?.[1];
    const near = unknown ? closest(unknown.replace(/^-+/, ''), Object.keys(options)) : undefined;
    throw new GraftError('GRAFT_UNKNOWN_FLAG', `graft ${command}: ${message}${near ? ` (did you mean --${near}?)` : ''}; see \`graft help ${command.split(' ')[0]}\``);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new GraftError(
      'GRAFT_BAD_ARGUMENT',
      `graft ${command}: unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}; see \`graft help ${command.split(' ')[0]}\``,
    );
  }
  return parsed as unknown as Parsed<O>;
}

/**
 * `-w -1`: parseArgs refuses a value that starts with a dash as ambiguous; a
 * negative number is a value, joined to its flag so the flag's own check
 * says what is wrong with it.
 */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const takesValue = (arg: string) =>
    Object.entries(options).find(([long, o]) => o.type === 'string' && (arg === `--${long}` || (o.short !== undefined && arg === `-${o.short}`)))?.[0];
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const long = takesValue(argv[i]!);
    const next = argv[i + 1];
    if (long && next !== undefined && /^-\d/.test(next)) {
      out.push(`--${long}=${next}`);
      i++;
    } else out.push(argv[i]!);
  }
  return out;
}

export function integer(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function seconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} must be a positive number of seconds, got ${JSON.stringify(value)}`);
  }
  return Math.round(n * 1000);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * A duration in milliseconds: a bare number is milliseconds (PM2's unit for
 * --restart-delay and --min-uptime), or a number with ms, s or m.
 */
export function milliseconds(flag: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(value);
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()]!) : NaN;
  if (!Number.isFinite(ms) || ms < min || ms > 86_400_000) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} must be a duration in milliseconds${min > 0 ? ` of at least ${min}` : ''}, or with a unit (500ms, 2s, 1m), got ${JSON.stringify(value)}`);
  }
  return ms;
}

const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size in bytes, or NaN: a number with K, M or G (powers of 1024, then an optional B or iB), or with B; a bare number counts in `bare`. */
function sizeInBytes(value: string, bare: 'b' | 'm'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?|(b))?\s*$/i.exec(value);
  return m ? Math.round(Number(m[1]) * SIZE_UNITS[(m[2] ?? m[3] ?? bare).toLowerCase()]!) : NaN;
}

/** A size such as `10M`, `512K`, `1G` or a number of bytes (K, M, G are powers of 1024; a trailing B or iB is allowed). */
export function bytes(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = sizeInBytes(value, 'b');
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} must be a size from ${formatBytes(min)} to ${formatBytes(max)} such as 10M, 512K or 1G, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function formatBytes(n: number): string {
  for (const unit of ['g', 'm', 'k'] as const) if (n >= SIZE_UNITS[unit]! && n % SIZE_UNITS[unit]! === 0) return `${n / SIZE_UNITS[unit]!}${unit.toUpperCase()}`;
  return `${n}B`;
}

/** A memory size in bytes: a bare number is megabytes, or a number with K, M or G (512M, 1.5G, 512MB). */
export function megabytes(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const bytes = sizeInBytes(value, 'm');
  if (!Number.isFinite(bytes) || bytes < 1024 ** 2 || bytes > 1024 ** 4) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `${flag} must be a memory size of at least 1 MB: megabytes (512), or with a unit (512M, 1G), got ${JSON.stringify(value)}`);
  }
  return bytes;
}

/** The known flag nearest to a mistyped one (at most 2 edits, or a third of its length), if any. */
function closest(typed: string, known: string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = editDistance(typed, name);
    if (d <= Math.max(2, Math.floor(name.length / 3)) && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
