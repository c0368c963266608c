/**
 * bench/logs: what graft's master costs an app that logs a lot. Every line a
 * worker prints goes through the master (a pipe, the master's line splitter
 * and tagger, then the log file); the same app run by bare node writes
 * straight to a file. One app (bench/logs/app.js) writes N pino-format JSON
 * lines as fast as it can, on request, then a last "done" line:
 *
 * (a) under graft with --log-dir (as installed: dist/, built first when stale),
 *     one worker, the default rotation (10M, 5 files);
 * (b) bare node, its stdout redirected to a file by the shell
 *     (`sh -c 'exec node app.js > FILE'`).
 *
 * A run is timed from the request to the moment the "done" line is in the
 * file (the file's tail is polled every 5 ms); lines per second of each side,
 * the ratio, the app's own write time (its writes wait when the master falls
 * behind) and the master's CPU time per line (/proc utime + stime). Both
 * processes stay up across rounds; rounds interleave the two sides, after a
 * warm-up on each.
 *
 *   node --import tsx bench/logs/run.ts [--lines N] [--rounds N] [--quick] ...
 *
 * Every process started here is stopped on the way out, also on failure.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { builtPackage } from '../lib/built.js';
import { runMain, tempDir } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { freePort } from '../lib/http.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { Proc } from '../lib/proc.js';
import { host, markdownTable, num, resultsHead, times, writeResults } from '../lib/report.js';
import { median, ratio } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';

const { values, quick, resultsPath } = parseOptions('logs', {
  lines: { default: 200_000, quick: 20_000, min: 1, env: 'BENCH_LINES', help: 'JSON lines the app writes in one measured run' },
  rounds: { default: 9, quick: 1, min: 1, env: 'BENCH_ROUNDS', help: 'measured runs of each side, interleaved' },
  warmup: { default: 20_000, quick: 2_000, min: 0, help: 'lines written once on each side before the rounds, not measured' },
});

const GOAL = 0.8;
const app = 'bench/logs/app.js';
const POLL_MS = 5;

interface Side {
  name: string;
  how: string;
  url: string;
  /** Files to look for the "done" line in: the live file and the one just rotated. */
  files: string[];
  /** The process whose CPU time is the per-line cost (graft's master), if any. */
  cpuPid?: number;
  runs: Run[];
}

interface Run {
  linesPerS: number;
  appWriteMs: number;
  cpuUsPerLine: number | undefined;
}

/** utime + stime of a process, in ms (clock ticks are 10 ms on Linux). */
function cpuMs(pid: number): number {
  const stat = (() => {
    const fd = openSync(`/proc/${pid}/stat`, 'r');
    try {
      const buf = Buffer.alloc(1024);
      return buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  })();
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Whether the last bytes of one of `files` hold the done line of run `id`. */
function doneIn(files: string[], id: string): boolean {
  const needle = `"done":"${id}"`;
  for (const file of files) {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      continue;
    }
    try {
      const size = statSync(file).size;
      const buf = Buffer.alloc(Math.min(4096, size));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      if (buf.toString('utf8').includes(needle)) return true;
    } finally {
      closeSync(fd);
    }
  }
  return false;
}

let runCount = 0;

/** One run: the app writes `lines` lines; timed until its done line is in the file. */
async function measure(side: Side, lines: number): Promise<Run> {
  const id = `run-${++runCount}`;
  const cpuBefore = side.cpuPid === undefined ? 0 : cpuMs(side.cpuPid);
  const started = performance.now();
  const answer = await fetch(`${side.url}write?n=${lines}&id=${id}`);
  const appWriteMs = Number((await answer.text()).trim());
  const deadline = started + 600_000;
  while (!doneIn(side.files, id)) {
    if (performance.now() > deadline) throw new Error(`${side.name}: the done line of ${id} never reached ${side.files[0]}`);
    await sleep(POLL_MS);
  }
  const elapsedMs = performance.now() - started;
  const cpu = side.cpuPid === undefined ? undefined : cpuMs(side.cpuPid) - cpuBefore;
  return { linesPerS: ((lines + 1) / elapsedMs) * 1000, appWriteMs, cpuUsPerLine: cpu === undefined ? undefined : (cpu * 1000) / (lines + 1) };
}

async function plainNode(): Promise<Side> {
  const dir = tempDir('bench-logs-plain-');
  const file = join(dir, 'app.log');
  const port = await freePort();
  const proc = new Proc(['-c', `exec "${process.execPath}" ${app} > "${file}"`], { program: 'sh', env: { ...process.env, PORT: String(port) } });
  if (!(await proc.waitFor((l) => l.text === 'listening', 0, 30_000))) throw new Error(`bare node did not start:\n${proc.tail()}`);
  return { name: 'bare node', how: '`node app.js > FILE`', url: `http://127.0.0.1:${port}/`, files: [file], runs: [] };
}

async function underGraft(): Promise<Side> {
  const dir = tempDir('bench-logs-graft-');
  const g = await Graft.start({ entry: app, workers: 1, built: true, args: ['--name', 'logbench', '--log-dir', dir] });
  const master = g.lines.find((l) => l.record?.role === 'master')?.record?.pid;
  if (typeof master !== 'number') throw new Error(`no master pid in graft's lines:\n${g.tail()}`);
  const file = join(dir, 'logbench.log');
  return { name: 'graft --log-dir', how: '`graft start app.js -w 1 --log-dir DIR`', url: g.url, files: [file, `${file}.1`], cpuPid: master, runs: [] };
}

function table(sides: Side[]): string {
  const base = median(sides[0]!.runs.map((r) => r.linesPerS));
  const rows = sides.map((s) => {
    const rate = median(s.runs.map((r) => r.linesPerS));
    const cpu = s.runs.map((r) => r.cpuUsPerLine).filter((c): c is number => c !== undefined);
    return [
      s.name,
      s.how,
      num(rate),
      s.runs.map((r) => num(r.linesPerS)).join(' / '),
      times(ratio(rate, base)),
      num(median(s.runs.map((r) => r.appWriteMs))),
      cpu.length ? num(median(cpu), 2) : '-',
    ];
  });
  return markdownTable(['side', 'how', 'lines/s (median)', 'rounds', '÷ bare node', "app's own writes (ms, median)", 'master CPU per line (µs)'], rows);
}

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(values)}`);
  builtPackage();
  const sides = [await plainNode(), await underGraft()];
  for (const side of sides) if (values.warmup > 0) await measure(side, values.warmup);
  for (let round = 1; round <= values.rounds; round++) {
    for (const side of sides) {
      const run = await measure(side, values.lines);
      side.runs.push(run);
      log(`round ${round}: ${side.name}: ${num(run.linesPerS)} lines/s (the app's writes ${num(run.appWriteMs)} ms)`);
    }
  }
  const r = ratio(median(sides[1]!.runs.map((x) => x.linesPerS)), median(sides[0]!.runs.map((x) => x.linesPerS)));
  const machine = host();
  const text = [
    resultsHead('logs', [], [
      `machine: ${machine.cores} cores (${machine.model}), ${machine.memoryGb} GB, shared with other work: read the ratio, not absolute rates`,
      `app: ${app}, ${values.lines} pino-format JSON lines per run (one process.stdout.write each, about 190 bytes), then a "done" line; ${values.warmup} lines first on each side, not measured; ${values.rounds} round(s), interleaved`,
      'timed from the request to the "done" line in the file (its tail polled every 5 ms); graft as installed (dist/), one worker, default rotation (10M, 5 files)',
    ]),
    table(sides),
    '',
    `- ${r >= GOAL ? 'PASS' : 'FAIL'}: lines per second through graft's master at least ${GOAL}× bare node writing to a file: ${times(r)}`,
    '',
  ].join('\n');
  console.log(text);
  writeResults(resultsPath, text);
  if (!quick && !(r >= GOAL)) process.exitCode = 1;
}

await runMain(main);
