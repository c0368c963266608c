import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GraftError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs, with its errors turned into graft's one-line coded errors. */
export interface Parsed<O extends Options> {
  values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K]['multiple'] extends true ? string[] : string };
  positionals: string[];
}

export function parse<O extends Options>(command: string, argv: string[], options: O, maxPositionals: number): Parsed<O> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new GraftError('GRAFT_UNKNOWN_FLAG', `graft ${command}: ${message}; see \`graft help\``);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new GraftError(
      'GRAFT_BAD_ARGUMENT',
      `graft ${command}: unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}; see \`graft help\``,
    );
  }
  return parsed as unknown as Parsed<O>;
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
