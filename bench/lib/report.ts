/**
 * What a benchmark prints and writes: number and ratio formats, markdown
 * tables, the facts of the run (command, revision, versions, machine) and the
 * results file.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { elapsedS, log } from './log.js';
import { root } from './paths.js';

/** `n` with `digits` decimals, or `missing` when it is not a finite number. */
export function num(n: number | undefined, digits = 0, missing = '-'): string {
  return n === undefined || !Number.isFinite(n) ? missing : n.toFixed(digits);
}

export interface TimesFormat {
  /** Below this, print `smallDigits` decimals instead of 2, so a tiny ratio does not read 0.00×. */
  small?: number;
  smallDigits?: number;
  missing?: string;
}

/** A ratio as `1.23×`. */
export function times(r: number | undefined, f: TimesFormat = {}): string {
  if (r === undefined || !Number.isFinite(r)) return f.missing ?? '-';
  return `${r.toFixed(f.small !== undefined && r < f.small ? (f.smallDigits ?? 2) : 2)}×`;
}

/** A markdown table. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]) => `|${cells.map((c) => (c ? ` ${c} ` : ' ')).join('|')}|`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/** The version of an installed package, '?' if unknown. */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/**
 * The graft source measured: its commit, whether src/ differs from it, and
 * whether anything else does (the benchmark and its apps included; untracked
 * files count, ignored ones and the benches' own results files do not).
 */
export function graftRevision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const commit = git('rev-parse', '--short', 'HEAD').trim();
    // Each line is `XY path`: the status letters are columns, so the output is not trimmed.
    // Results files are what benches write, not what they measure: a run after another bench's is still clean.
    const changed = git('status', '--porcelain')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3))
      .filter((f) => !/^bench\/[^/]+\/RESULTS\.md$/.test(f));
    if (changed.length === 0) return `commit ${commit}, working tree clean`;
    const src = changed.some((f) => f.startsWith('src/'));
    const shown = changed.slice(0, 5).join(', ') + (changed.length > 5 ? ` and ${changed.length - 5} more` : '');
    return `commit ${commit}${src ? ' with uncommitted changes in src/' : ', src/ clean'}; NOT a clean tree, uncommitted: ${shown}`;
  } catch {
    return 'revision unknown (not a git checkout)';
  }
}

/** How this run was started, BENCH_* environment included: `npm run bench:<bench> -- …   (= node …)` or `node …`. */
export function commandLine(bench: string): string {
  const envs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const args = process.argv.slice(2).join(' ');
  const direct = `${envs}node --import tsx bench/${bench}/run.ts${args ? ' ' + args : ''}`;
  return process.env.npm_lifecycle_event === `bench:${bench}` ? `${envs}npm run bench:${bench}${args ? ' -- ' + args : ''}   (= ${direct})` : direct;
}

/** The machine: core count, CPU model, memory in GB (one decimal). */
export function host(): { cores: number; model: string; memoryGb: string } {
  const cpu = cpus();
  return { cores: cpu.length, model: cpu[0]?.model.trim() ?? '?', memoryGb: (totalmem() / 2 ** 30).toFixed(1) };
}

/** The 1-minute load average when the benchmark started (this module loaded). */
const loadAtStart = loadavg()[0]!;

/** The revision the benchmark started on: what it measured, whatever changes in the tree while it runs. */
const revisionAtStart = graftRevision();

/** The revision measured, and a warning if the tree changed while the benchmark ran. */
function measuredRevision(): string {
  return graftRevision() === revisionAtStart ? revisionAtStart : `${revisionAtStart} (at the start; the tree changed during the run: NOT publishable)`;
}

/**
 * The head of a results file: title, command, date, the graft revision with
 * node's and `versions`, the benchmark's own `lines` (bullets), then the total
 * run time and the load average at the start and now.
 */
export function resultsHead(bench: string, versions: string[], lines: string[]): string {
  return [
    `# bench/${bench} results`,
    '',
    `- command: \`${commandLine(bench)}\``,
    `- date: ${new Date().toISOString()}`,
    `- graft: ${[measuredRevision(), `node ${process.version}, ${process.platform}/${process.arch}`, ...versions].join('; ')}`,
    ...lines.map((l) => `- ${l}`),
    `- total run time: ${elapsedS().toFixed(0)} s; 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
    '',
  ].join('\n');
}

/** Writes the results file, unless `path` is undefined (print only). */
export function writeResults(path: string | undefined, text: string): void {
  if (path === undefined) return;
  writeFileSync(path, text);
  const shown = relative(process.cwd(), path);
  log(`results written to ${shown.startsWith('..') ? path : shown}`);
}
