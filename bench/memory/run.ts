/**
 * bench/memory: what graft's own processes and its workers cost in memory,
 * side by side with PM2 and bare node, in one run. graft runs as installed
 * (dist/, built first when stale): no tsx in its master or workers.
 *
 * 1. Per worker: the same app as a .js entry and a .ts entry under graft
 *    (compiled by the master, and with --tsx, the way it was before), bare
 *    `node app.js` and `node --import tsx app.ts`: RSS of each process once
 *    it served, and its boot time (start → serving). Fresh starts, rounds
 *    interleaved.
 * 2. The supervisor over time: graft's master (RSS from /proc, V8 heap from
 *    `graft status`) over N reloads of a .ts entry (compiled every time) and
 *    over M config changes (`graft config apply --set`); PM2's daemon (God)
 *    over the same N `pm2 reload`s (pm2#6113 says it grows). Readings at the
 *    start, after a warm-up, at the end, and the slope after the warm-up.
 *    Every process of graft's own gets a row: the master, its keeper, the
 *    standby master and its warm workers, the master's esbuild.
 *    The master is also read after a full garbage collection (through its
 *    inspector, bench/lib/inspector.ts) at the start, after the warm-up and
 *    at the end: what it retains, which is what its goal is held to.
 *
 *   node --import tsx bench/memory/run.ts [--reloads N] [--configs N] [--quick] ...
 *
 * Every process started here is stopped on the way out, also on failure.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { builtPackage } from '../lib/built.js';
import { runMain } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { freePort, getFresh } from '../lib/http.js';
import { Inspected, type Retained } from '../lib/inspector.js';
import { log } from '../lib/log.js';
import { childrenOf, rssMb, slopePer100, titleOf, type Sample } from '../lib/memory.js';
import { parseOptions } from '../lib/options.js';
import { tsxImport } from '../lib/paths.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { Proc } from '../lib/proc.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { median, ratio } from '../lib/stats.js';

// ---------------------------------------------------------------- configuration

const PARTS = ['workers', 'reloads', 'configs', 'pm2'] as const;

const { values, quick, resultsPath } = parseOptions('memory', {
  reloads: { default: 1000, quick: 20, min: 2, env: 'BENCH_RELOADS', help: 'reloads, graft and PM2 each' },
  configs: { default: 10000, quick: 200, min: 2, env: 'BENCH_CONFIGS', help: 'config changes (graft config apply --set), one after another' },
  samples: { default: 100, quick: 10, min: 4, env: 'BENCH_SAMPLES', help: 'memory readings over each run, besides the one before it' },
  warmup: { default: 10, min: 0, env: 'BENCH_WARMUP_PERCENT', unit: '%', help: 'the first share of the operations, left out of the slope' },
  rounds: { default: 3, quick: 1, min: 1, env: 'BENCH_ROUNDS', help: 'fresh starts of each per-worker row' },
  workers: { default: 2, min: 1, env: 'BENCH_WORKERS', help: 'workers under graft and PM2; bare node processes at once' },
  requests: { default: 200, quick: 50, min: 0, env: 'BENCH_REQUESTS', help: 'requests (each on a new connection) before a worker is measured' },
  parts: { type: 'string', default: PARTS.join(','), help: `which parts run (${PARTS.join(', ')})` },
});

const config = {
  reloads: values.reloads,
  configs: values.configs,
  samples: values.samples,
  warmupPercent: Math.min(values.warmup, 90),
  rounds: values.rounds,
  workers: values.workers,
  requests: values.requests,
  parts: values.parts.split(',').map((p) => p.trim()),
};
for (const p of config.parts) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--parts: unknown part ${JSON.stringify(p)} (${PARTS.join(', ')})`);
const runs = (part: (typeof PARTS)[number]) => config.parts.includes(part);

const appJs = 'bench/memory/app.js';
const appTs = 'bench/memory/app.ts';

/** What `graft status` answers, as far as this benchmark reads it. */
interface Status {
  /** keeper: the `graft start` process that supervises the master for the service's life. */
  master: { pid: number; generation: number; memory?: { heapUsed: number; heapTotal: number }; keeper?: number };
  workers: Array<{ pid: number; state: string; generation: number }>;
}

const MB = 1024 * 1024;

// ------------------------------------------------------------ part 1: per worker

interface WorkerRow {
  name: string;
  how: string;
  rss: number[];
  bootMs: number[];
  /** The master's compile time per generation (a TypeScript entry). */
  buildMs: number[];
}

/** Requests on new connections, so node:cluster spreads them over every worker. */
async function warm(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await getFresh(url);
    if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
  }
}

/** `workers` bare node processes at once, each on its own port; boot = spawn → "listening". */
async function bareRound(row: WorkerRow, args: string[]): Promise<void> {
  const procs = await Promise.all(
    Array.from({ length: config.workers }, async () => {
      const port = await freePort();
      const t0 = performance.now();
      const proc = new Proc(args, { env: { ...process.env, PORT: String(port), BENCH_LISTENING: '1' } });
      return { proc, port, t0 };
    }),
  );
  try {
    for (const { proc, port, t0 } of procs) {
      const seen = await proc.waitFor((l) => l.text === 'listening', 0, 30_000);
      if (!seen) throw new Error(`node ${args.join(' ')} did not listen:\n${proc.tail()}`);
      row.bootMs.push(seen.line.at - t0);
      await warm(`http://127.0.0.1:${port}/`, Math.ceil(config.requests / config.workers));
    }
    for (const { proc } of procs) row.rss.push(rssMb(proc.child.pid!));
  } finally {
    await Promise.all(procs.map(({ proc }) => proc.stop()));
  }
}

/** graft as installed with `workers` workers; boot = the master's fork → ready (its "worker ready" bootMs). */
async function graftRound(row: WorkerRow, entry: string, args: string[]): Promise<void> {
  const g = await Graft.start({ entry, workers: config.workers, built: true, args });
  try {
    const status = (await g.control({ cmd: 'status' })) as Status;
    const pids = status.workers.filter((w) => w.state === 'ready').map((w) => w.pid);
    if (pids.length !== config.workers) throw new Error(`graft ${entry}: ${pids.length} ready workers, not ${config.workers}`);
    for (const l of g.lines) {
      if (l.record?.msg === 'worker ready' && typeof l.record.bootMs === 'number') row.bootMs.push(l.record.bootMs);
      if (l.record?.msg === 'entry compiled' && typeof l.record.buildMs === 'number') row.buildMs.push(l.record.buildMs);
    }
    await warm(g.url, config.requests);
    for (const pid of pids) row.rss.push(rssMb(pid));
  } finally {
    await g.stop();
  }
}

async function perWorker(): Promise<WorkerRow[]> {
  const variants: Array<{ row: WorkerRow; round: (row: WorkerRow) => Promise<void> }> = [
    { row: newRow('bare node, app.js', '`node app.js`'), round: (r) => bareRound(r, [appJs]) },
    { row: newRow('bare node + tsx, app.ts', '`node --import tsx app.ts`'), round: (r) => bareRound(r, ['--import', tsxImport, appTs]) },
    { row: newRow('graft, app.js', '`graft start app.js`'), round: (r) => graftRound(r, appJs, []) },
    { row: newRow('graft, app.ts (compiled by the master)', '`graft start app.ts`'), round: (r) => graftRound(r, appTs, []) },
    { row: newRow('graft --tsx, app.ts (tsx in each worker: before)', '`graft start app.ts --tsx`'), round: (r) => graftRound(r, appTs, ['--tsx']) },
  ];
  for (let round = 0; round < config.rounds; round++) {
    // Rotate the order each round, so no row always starts on a cold or a busy machine.
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + round) % variants.length]!;
      await v.round(v.row);
      log(`workers round ${round + 1}/${config.rounds} ${v.row.name}: RSS ${v.row.rss.slice(-config.workers).map((m) => m.toFixed(1)).join(', ')} MB, boot ${v.row.bootMs.slice(-config.workers).map((m) => m.toFixed(0)).join(', ')} ms`);
    }
  }
  return variants.map((v) => v.row);
}

function newRow(name: string, how: string): WorkerRow {
  return { name, how, rss: [], bootMs: [], buildMs: [] };
}

// ------------------------------------------------------- part 2: the supervisor

/** One process's readings over a run. */
interface Series {
  name: string;
  samples: Sample[];
}

interface SupervisorRun {
  title: string;
  operation: string;
  total: number;
  failed: number;
  firstFailure: string | undefined;
  seconds: number;
  series: Series[];
  /** What the supervisor said at the end, proving the operations took effect. */
  check?: string;
  /** The master after a full garbage collection: at the start, after the warm-up, at the end. */
  retained?: Array<Retained & { ops: number }>;
}

/** Readings of several processes at once, by name; a process that appears later (a keeper) starts its own series. */
class Sampler {
  readonly series = new Map<string, Sample[]>();
  record(ops: number, readings: Array<{ name: string; mb: number }>): void {
    for (const { name, mb } of readings) {
      let s = this.series.get(name);
      if (!s) this.series.set(name, (s = []));
      s.push({ ops, mb });
    }
  }
  list(): Series[] {
    return [...this.series].map(([name, samples]) => ({ name, samples }));
  }
}

/**
 * graft's own processes, from `graft status`: the master (RSS and V8 heap),
 * its keeper (`master.keeper`), the standby master the keeper holds ready for
 * a crash and the worker processes the standby keeps warm (from 5 s after it
 * loaded), and the master's esbuild service (its child that compiles the entry).
 */
async function graftReadings(g: Graft): Promise<Array<{ name: string; mb: number }>> {
  const status = (await g.control({ cmd: 'status' })) as Status;
  const out = [{ name: 'graft master RSS', mb: rssMb(status.master.pid) }];
  if (status.master.memory) {
    out.push({ name: 'graft master V8 heap used', mb: status.master.memory.heapUsed / MB });
    out.push({ name: 'graft master V8 heap committed', mb: status.master.memory.heapTotal / MB });
  }
  const keeper = status.master.keeper;
  if (typeof keeper === 'number') {
    out.push({ name: 'graft keeper RSS', mb: rssMb(keeper) });
    const standby = childrenOf(keeper).find((c) => titleOf(c.pid).startsWith('graft standby '));
    if (standby) {
      out.push({ name: 'graft standby master RSS', mb: rssMb(standby.pid) });
      const warm = childrenOf(standby.pid).filter((c) => titleOf(c.pid).endsWith(' warm'));
      if (warm.length) out.push({ name: `the standby's ${warm.length} warm workers (together) RSS`, mb: warm.reduce((a, c) => a + rssMb(c.pid), 0) });
    }
  }
  const esbuild = childrenOf(status.master.pid).filter((c) => c.comm === 'esbuild');
  if (esbuild.length) out.push({ name: "esbuild (the master's compiler, a child process) RSS", mb: esbuild.reduce((a, c) => a + rssMb(c.pid), 0) });
  return out;
}

/** Operations in the warm-up: left out of the halves and the slope. */
const warmupOps = (total: number) => Math.floor((total * config.warmupPercent) / 100);

/**
 * `total` operations one after another, with readings before and `samples` times over the run,
 * and what `retainedNow` reads (after a full collection) before, after the warm-up and at the end.
 */
async function overTime(
  title: string,
  operation: string,
  total: number,
  op: (i: number) => Promise<void>,
  read: () => Promise<Array<{ name: string; mb: number }>>,
  retainedNow?: () => Promise<Retained>,
): Promise<SupervisorRun> {
  const sampler = new Sampler();
  const every = Math.max(1, Math.floor(total / config.samples));
  const retained: Array<Retained & { ops: number }> = [];
  const keep = async (ops: number) => {
    if (retainedNow) retained.push({ ops, ...(await retainedNow()) });
  };
  await keep(0);
  sampler.record(0, await read());
  let failed = 0;
  let firstFailure: string | undefined;
  const t0 = performance.now();
  for (let i = 1; i <= total; i++) {
    try {
      await op(i);
    } catch (err) {
      failed++;
      firstFailure ??= String((err as Error)?.message ?? err).slice(0, 300);
    }
    if (i % every === 0 || i === total) {
      const readings = await read();
      sampler.record(i, readings);
      log(`${title}: ${i}/${total}${failed ? ` (${failed} failed)` : ''}: ${readings.map((r) => `${r.name} ${r.mb.toFixed(1)} MB`).join(', ')}`);
    }
    // After the sampled reading, so that the collection does not lower it.
    if ((i === warmupOps(total) || i === total) && retained.at(-1)?.ops !== i) await keep(i);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { title, operation, total, failed, firstFailure, seconds, series: sampler.list(), ...(retainedNow ? { retained } : {}) };
}

/** The master after a full collection, through its inspector (opened once, closed with `done`). */
function retainedByMaster(g: Graft): { read: () => Promise<Retained>; done: () => void } {
  let inspected: Inspected | undefined;
  return {
    read: async () => (inspected ??= await Inspected.open(((await g.control({ cmd: 'status' })) as Status).master.pid)).retained(),
    done: () => inspected?.close(),
  };
}

async function graftReloads(): Promise<SupervisorRun> {
  const g = await Graft.start({ entry: appTs, workers: config.workers, built: true });
  const master = retainedByMaster(g);
  try {
    // Every process of graft's is up (the standby's warm workers 5 s after it loaded) before the first reading.
    await g.settled();
    const run = await overTime(
      `graft, ${config.reloads} reloads`,
      'reloads',
      config.reloads,
      async () => {
        await g.control({ cmd: 'reload' });
      },
      () => graftReadings(g),
      master.read,
    );
    run.check = `generation ${((await g.control({ cmd: 'status' })) as Status).master.generation} at the end`;
    return run;
  } finally {
    master.done();
    await g.stop();
  }
}

async function graftConfigs(): Promise<SupervisorRun> {
  const g = await Graft.start({ entry: appTs, workers: config.workers, built: true });
  const master = retainedByMaster(g);
  try {
    // Every process of graft's is up (the standby's warm workers 5 s after it loaded) before the first reading.
    await g.settled();
    const run = await overTime(
      `graft, ${config.configs} config changes`,
      'config changes',
      config.configs,
      async (i) => {
        await g.control({ cmd: 'config', action: 'apply', set: [`bench.n=${i}`] });
      },
      () => graftReadings(g),
      master.read,
    );
    const status = (await g.control({ cmd: 'status' })) as Status & { master: { config?: { version: number } } };
    run.check = `config version ${status.master.config?.version} at the end`;
    return run;
  } finally {
    master.done();
    await g.stop();
  }
}

async function pm2Reloads(): Promise<SupervisorRun> {
  const pm2 = await Pm2.start({ app: 'memory', script: appJs, workers: config.workers });
  try {
    const daemon = Number(readFileSync(join(pm2.home, 'pm2.pid'), 'utf8').trim());
    return await overTime(
      `PM2, ${config.reloads} reloads`,
      'reloads',
      config.reloads,
      async () => {
        const r = await pm2.command(['reload', 'memory'], 60_000);
        if (r.code !== 0) throw new Error(`pm2 reload exited ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${(r.stderr || r.stdout).trim().slice(-200)}`);
      },
      async () => [{ name: 'PM2 daemon (God) RSS', mb: rssMb(daemon) }],
    );
  } finally {
    await pm2.stop();
  }
}

// -------------------------------------------------------------------- report

const mb = (n: number | undefined) => num(n, 1);

/**
 * After the warm-up, the readings split in two halves. RSS of a garbage-collected
 * process saws (it climbs until a major GC hands pages back), so a slope over a
 * window depends on where the teeth fall; the peaks do not: memory that leaks
 * lifts the second half's peak above the first's.
 */
function halves(run: SupervisorRun, s: Series): { warmed: Sample | undefined; first: Sample[]; second: Sample[]; slope: number } {
  const warmOps = warmupOps(run.total);
  const after = s.samples.filter((x) => x.ops >= warmOps && Number.isFinite(x.mb));
  const middle = warmOps + (run.total - warmOps) / 2;
  return { warmed: after[0], first: after.filter((x) => x.ops <= middle), second: after.filter((x) => x.ops > middle), slope: slopePer100(after) };
}

const peak = (xs: Sample[]) => (xs.length ? Math.max(...xs.map((x) => x.mb)) : NaN);
const low = (xs: Sample[]) => (xs.length ? Math.min(...xs.map((x) => x.mb)) : NaN);

function trend(run: SupervisorRun, s: Series): string[] {
  const { warmed, first, second, slope } = halves(run, s);
  const start = s.samples[0];
  const end = s.samples[s.samples.length - 1];
  return [
    s.name,
    `${mb(start?.mb)} MB`,
    warmed ? `${mb(warmed.mb)} MB (at ${warmed.ops})` : '-',
    `${mb(end?.mb)} MB (at ${end?.ops ?? '-'})`,
    `${mb(low(first))} – ${mb(peak(first))} MB`,
    `${mb(low(second))} – ${mb(peak(second))} MB`,
    `${num(slope, 3)} MB`,
  ];
}

/** The master's rows after a full collection: three readings, so no halves and no slope. */
function retainedRows(run: SupervisorRun): string[][] {
  const [start, warmed, end] = [run.retained?.[0], run.retained?.find((r) => r.ops === warmupOps(run.total)), run.retained?.at(-1)];
  if (!start || !warmed || !end || end === start) return [];
  const row = (what: string, of: (r: Retained) => number) => [
    `graft master ${what}, after a full GC`,
    `${mb(of(start))} MB`,
    `${mb(of(warmed))} MB (at ${warmed.ops})`,
    `${mb(of(end))} MB (at ${end.ops})`,
    '-',
    '-',
    '-',
  ];
  // External: memory V8 tracks outside its heap (Buffers, native bindings); RSS that none of these rows explain is the allocator's or native code's.
  return [row('RSS', (r) => r.rssMb), row('V8 heap used', (r) => r.heapUsedMb), row('V8 heap committed', (r) => r.heapTotalMb), row('external (Buffers, native)', (r) => r.externalMb)];
}

function supervisorTable(runs: SupervisorRun[]): string {
  const lines: string[] = [
    "The master's RSS follows its V8 heap committed: under back-to-back operations V8 enlarges its young generation " +
      '(up to 2 × 16 MB semi-spaces by default) and keeps it; the heap used after a collection (its low) is what a leak would lift. ' +
      'The rows "after a full GC" are read in the master right after two full collections (HeapProfiler.collectGarbage through its inspector, ' +
      'opened with SIGUSR1): what it retains, wherever the sawtooth is; the master\'s goal is held to them.',
    '',
  ];
  for (const run of runs) {
    lines.push(
      `### ${run.title}`,
      '',
      `${run.total} ${run.operation} one after another in ${num(run.seconds, 1)} s; ${run.failed} failed${run.firstFailure ? ` (first: ${run.firstFailure})` : ''}${run.check ? `; ${run.check}` : ''}.`,
      '',
      markdownTable(
        ['process', 'start', 'after the warm-up', 'end', 'first half after the warm-up: low – peak', 'second half: low – peak', `least-squares slope after the warm-up, per 100 ${run.operation}`],
        [...run.series.map((s) => trend(run, s)), ...retainedRows(run)],
      ),
      '',
    );
  }
  return lines.join('\n');
}

function workerTable(rows: WorkerRow[]): string {
  const bare = rows.find((r) => r.name === 'bare node, app.js');
  const js = rows.find((r) => r.name === 'graft, app.js');
  const bareRss = bare ? median(bare.rss) : undefined;
  const bareBoot = bare ? median(bare.bootMs) : undefined;
  const lines = [
    `### Per worker: ${config.workers} at once, ${config.rounds} fresh start(s) each, ${config.requests} requests served before the reading (medians)`,
    '',
    markdownTable(
      ['process', 'how', 'RSS', '÷ bare node', '÷ graft app.js', 'boot (start → serving)', '÷ bare node', 'samples'],
      rows.map((r) => [
        r.name,
        r.how,
        `${mb(median(r.rss))} MB`,
        times(ratio(median(r.rss), bareRss)),
        times(ratio(median(r.rss), js ? median(js.rss) : undefined)),
        `${num(median(r.bootMs))} ms`,
        times(ratio(median(r.bootMs), bareBoot)),
        String(r.rss.length),
      ]),
    ),
    '',
  ];
  const compiled = rows.find((r) => r.buildMs.length > 0);
  if (compiled) lines.push(`The master compiles app.ts before a generation's workers start: ${num(median(compiled.buildMs))} ms (median of ${compiled.buildMs.length}), once per generation, not per worker.`, '');
  lines.push(
    "Boot: for bare node, from spawn to the app's \"listening\" line; under graft, from the master's fork to the worker's ready message " +
      "(the worker runtime loads, asks the master for its config snapshot, loads the app, listens). RSS: VmRSS from /proc of each process after it served.",
    '',
  );
  return lines.join('\n');
}

function goals(rows: WorkerRow[], runs: SupervisorRun[]): Array<{ ok: boolean; text: string }> {
  const out: Array<{ ok: boolean; text: string }> = [];
  const js = rows.find((r) => r.name === 'graft, app.js');
  const ts = rows.find((r) => r.name.startsWith('graft, app.ts'));
  const tsx = rows.find((r) => r.name.startsWith('graft --tsx'));
  if (js && ts) {
    const q = median(ts.rss) / median(js.rss);
    out.push({ ok: q <= 1.05, text: `a compiled .ts worker's RSS within 5% of a .js worker's: ${q.toFixed(2)}×` });
  }
  if (ts && tsx) out.push({ ok: median(ts.rss) < median(tsx.rss), text: `a compiled .ts worker is smaller than one with tsx: ${mb(median(ts.rss))} vs ${mb(median(tsx.rss))} MB` });
  for (const run of runs.filter((r) => r.title.startsWith('graft'))) {
    // Every graft process gets a goal: the master, its keeper, the standby and its warm workers, its esbuild.
    const warmed = run.retained?.find((r) => r.ops === warmupOps(run.total));
    const end = run.retained?.at(-1);
    if (warmed && end && end !== warmed) {
      // What the master retains, after a full collection: at most 5 MB more at the end than after the warm-up (5 KB per operation over 1,000 reloads).
      out.push({
        ok: end.rssMb - warmed.rssMb < 5 && run.failed === 0,
        text: `${run.title}: graft master after a full GC: RSS ${mb(warmed.rssMb)} → ${mb(end.rssMb)} MB (V8 heap used ${mb(warmed.heapUsedMb)} → ${mb(end.heapUsedMb)} MB) from the warm-up to the end, ${run.failed} failed`,
      });
    }
    for (const s of run.series.filter((x) => x.name.endsWith(' RSS') && !(warmed && x.name === 'graft master RSS'))) {
      const h = halves(run, s);
      const [first, second] = [peak(h.first), peak(h.second)];
      // Flat: the second half's peak at most 5 MB above the first's (5 KB per operation over 1,000 reloads).
      out.push({ ok: second - first < 5 && run.failed === 0, text: `${run.title}: ${s.name.replace(/ RSS$/, '')}: peak ${mb(first)} → ${mb(second)} MB after the warm-up, ${run.failed} failed` });
    }
  }
  return out;
}

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(config)}`);
  builtPackage();
  const rows = runs('workers') ? await perWorker() : [];
  const supervisor: SupervisorRun[] = [];
  if (runs('reloads')) supervisor.push(await graftReloads());
  if (runs('pm2')) supervisor.push(await pm2Reloads());
  if (runs('configs')) supervisor.push(await graftConfigs());

  const met = goals(rows, supervisor);
  const machine = host();
  const header = resultsHead('memory', [`PM2 ${packageVersion('pm2')}`, `tsx ${packageVersion('tsx')}`, `esbuild ${packageVersion('esbuild')}`], [
    `machine: ${machine.cores} cores (${machine.model}), ${machine.memoryGb} GB, shared with other work: read ratios and trends, not absolute times`,
    `app: bench/memory/app.js and app.ts (the same node:http server, typed), ${config.workers} workers under graft and PM2`,
    'graft: as installed (`node bin/graft.js`, dist/ built from this revision), so neither the master nor the workers load tsx; ' +
      'reloads and config changes are sent over the control socket one after another (what `graft reload` and `graft config apply --set bench.n=<i>` send)',
    `PM2: \`pm2 start app.js -i ${config.workers} --wait-ready\` in an isolated PM2_HOME, then \`pm2 reload memory\` (the CLI) one after another`,
    `memory: VmRSS from /proc/<pid>/status; the master's V8 heap from \`graft status\` (no forced GC, so it saws); ${config.samples} readings per run after the one at the start; ` +
      `after the warm-up (the first ${config.warmupPercent}% of the operations) the readings split in two halves: RSS and the heap saw as the garbage collector works, so a leak shows as ` +
      "the second half's low (live data after a collection) and peak above the first's; the least-squares slope is shown too (it moves with where the teeth fall)",
  ]);
  const full = [header, rows.length ? workerTable(rows) : '', supervisorTable(supervisor), '### Goals', '', ...met.map((g) => `- ${g.ok ? 'PASS' : 'FAIL'}: ${g.text}`), ''].join('\n');
  console.log(full);
  writeResults(resultsPath, full);
  if (!quick && met.some((g) => !g.ok)) process.exitCode = 1;
}

await runMain(main);
