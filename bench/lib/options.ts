/**
 * A benchmark's command line: its own options, each with a default and a
 * value for `--quick` (a short smoke run), plus the flags every benchmark has:
 *
 *   --quick        the quick values of every option not given; the results go
 *                  to a temp file, never to the committed RESULTS.md
 *   --out PATH     results file (default bench/<name>/RESULTS.md)
 *   --no-results   print only
 *   --help, -h
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { root } from './paths.js';

export interface NumberOption {
  type?: 'number';
  default: number;
  /** The value under --quick (default: `default`). */
  quick?: number;
  min?: number;
  /** An environment variable read when the flag is not given. */
  env?: string;
  /** What the value is, for --help: N, S (seconds), MS, MB… */
  unit?: string;
  help: string;
}

export interface StringOption {
  type: 'string';
  default: string;
  quick?: string;
  unit?: string;
  help: string;
}

export type OptionSpec = Record<string, NumberOption | StringOption>;
export type OptionValues<S extends OptionSpec> = { [K in keyof S]: S[K] extends StringOption ? string : number };

export interface BenchOptions<S extends OptionSpec> {
  values: OptionValues<S>;
  quick: boolean;
  /** Where the results go; undefined with --no-results. */
  resultsPath: string | undefined;
}

/** Parses process.argv for bench/<bench>/run.ts; prints the help and exits on --help. */
export function parseOptions<S extends OptionSpec>(bench: string, spec: S, argv = process.argv.slice(2)): BenchOptions<S> {
  const flags = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(Object.keys(spec).map((name) => [name, { type: 'string' as const }])),
      quick: { type: 'boolean' },
      out: { type: 'string' },
      'no-results': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values as Record<string, string | boolean | undefined>;

  if (flags.help) {
    console.log(help(bench, spec));
    process.exit(0);
  }
  const quick = flags.quick === true;
  const values: Record<string, string | number> = {};
  for (const [name, o] of Object.entries(spec)) {
    const flag = flags[name] as string | undefined;
    if (o.type === 'string') {
      values[name] = flag ?? (quick ? (o.quick ?? o.default) : o.default);
      continue;
    }
    const raw = flag ?? (o.env ? process.env[o.env] : undefined);
    if (raw === undefined || raw === '') {
      values[name] = quick ? (o.quick ?? o.default) : o.default;
      continue;
    }
    const n = Number(raw);
    const min = o.min ?? 0;
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name}${o.env ? ` (${o.env})` : ''} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
    values[name] = n;
  }
  const out = flags.out as string | undefined;
  const resultsPath = flags['no-results'] ? undefined : (out ?? (quick ? join(tmpdir(), `graft-bench-${bench}-quick.md`) : join(root, 'bench', bench, 'RESULTS.md')));
  return { values: values as OptionValues<S>, quick, resultsPath };
}

function help(bench: string, spec: OptionSpec): string {
  const rows = Object.entries(spec).map(([name, o]) => {
    const defaults = `(${o.default}${o.quick !== undefined ? `; --quick: ${o.quick}` : ''})`;
    const env = o.type !== 'string' && o.env ? `  env ${o.env}` : '';
    return `  ${`--${name} ${o.unit ?? (o.type === 'string' ? 'LIST' : 'N')}`.padEnd(22)} ${o.help} ${defaults}${env}`;
  });
  return [
    `node --import tsx bench/${bench}/run.ts [options]   (npm run bench:${bench} -- [options])`,
    ...rows,
    `  ${'--quick'.padEnd(22)} a short run: the --quick values above; results to ${join(tmpdir(), `graft-bench-${bench}-quick.md`)}`,
    `  ${'--out PATH'.padEnd(22)} results file (bench/${bench}/RESULTS.md)`,
    `  ${'--no-results'.padEnd(22)} print only, do not write the results file`,
  ].join('\n');
}
