/**
 * bench/reload: the same app (app.js) under graft, PM2 and bare node:cluster,
 * 2 workers each, side by side in one run.
 *
 * 1. Steady throughput: autocannon (keep-alive, pipelining 1) against each,
 *    in interleaved rounds; the median req/s of each against node:cluster's.
 * 2. Reloads under load, graft and PM2 in turn: a steady phase for the latency
 *    baseline, then N reloads ~1 s apart under the same load: failed requests,
 *    non-2xx, latency during the reloads against steady, and the time from a
 *    reload command to the last old worker gone.
 *
 *   node --import tsx bench/reload/run.ts [--duration S] [--rounds N] [--reloads N] ...
 *
 * Everything on 127.0.0.1; every load run is bounded in time; every process
 * started here is stopped on the way out, also on failure or Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startLoad, type LoadRun, type LoadSummary } from './load.js';
import { ClusterTarget, GraftTarget, Pm2Target, root, sleep, type LogLine, type Target } from './targets.js';

// ---------------------------------------------------------------- configuration

const flags = parseArgs({
  args: process.argv.slice(2),
  options: {
    connections: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    reloads: { type: 'string' },
    gap: { type: 'string' },
    'latency-duration': { type: 'string' },
    workers: { type: 'string' },
    out: { type: 'string' },
    'no-results': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
}).values;

if (flags.help) {
  console.log(`node --import tsx bench/reload/run.ts [options]   (each also as an env var)
  --connections N        autocannon connections, pipelining 1    BENCH_CONNECTIONS   (64)
  --duration S           each steady throughput measurement       BENCH_DURATION      (8)
  --rounds N             interleaved throughput rounds (median)   BENCH_ROUNDS        (3)
  --warmup S             warm-up before each measurement          BENCH_WARMUP        (2)
  --reloads N            reloads under load, per supervisor       BENCH_RELOADS       (20)
  --gap MS               pause after each reload command returns  BENCH_RELOAD_GAP_MS (1000)
  --latency-duration S   steady phase for the latency baseline    BENCH_LATENCY_DURATION (10)
  --workers N            workers for every supervisor             BENCH_WORKERS       (2)
  --out PATH             results file                             (bench/reload/RESULTS.md)
  --no-results           print only, do not write the results file`);
  process.exit(0);
}

function numberOption(flag: string | undefined, env: string, fallback: number, min: number): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${env} / flag must be a number >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

const config = {
  connections: numberOption(flags.connections, 'BENCH_CONNECTIONS', 64, 1),
  durationS: numberOption(flags.duration, 'BENCH_DURATION', 8, 1),
  rounds: numberOption(flags.rounds, 'BENCH_ROUNDS', 3, 1),
  warmupS: numberOption(flags.warmup, 'BENCH_WARMUP', 2, 0),
  reloads: numberOption(flags.reloads, 'BENCH_RELOADS', 20, 1),
  gapMs: numberOption(flags.gap, 'BENCH_RELOAD_GAP_MS', 1000, 0),
  latencyS: numberOption(flags['latency-duration'], 'BENCH_LATENCY_DURATION', 10, 1),
  workers: numberOption(flags.workers, 'BENCH_WORKERS', 2, 1),
  timeoutS: 10,
};
const resultsPath = flags.out ?? join(root, 'bench/reload/RESULTS.md');

const startedAt = performance.now();
const loadAtStart = loadavg()[0]!.toFixed(1);
const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);

// -------------------------------------------------------------------- cleanup

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err) => log(`cleanup failed: ${String(err)}`));
  })();
  return cleaning;
}
const liveLoads = new Set<LoadRun>();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    for (const l of liveLoads) l.stop();
    void cleanup().finally(() => process.exit(130));
  });
}

function load(url: string, durationS: number, recordLatencies: boolean): LoadRun {
  const run = startLoad({ url, connections: config.connections, durationS, timeoutS: config.timeoutS, recordLatencies });
  liveLoads.add(run);
  void run.result.finally(() => liveLoads.delete(run)).catch(() => {});
  return run;
}

async function checkServes(target: Target): Promise<void> {
  const res = await fetch(target.url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200 || text !== 'ok\n') throw new Error(`${target.name} answered ${res.status} ${JSON.stringify(text)}`);
}

// ------------------------------------------------------------ phase 1: steady

interface ThroughputRow {
  name: string;
  rps: number[];
  errors: number;
  non2xx: number;
  p50: number[];
  p99: number[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function throughput(targets: Target[]): Promise<ThroughputRow[]> {
  const rows = new Map(targets.map((t) => [t.name, { name: t.name, rps: [], errors: 0, non2xx: 0, p50: [], p99: [] } as ThroughputRow]));
  for (let round = 0; round < config.rounds; round++) {
    // Rotate the order each round, so no supervisor always goes first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      if (config.warmupS > 0) await load(target.url, config.warmupS, false).result;
      const r = await load(target.url, config.durationS, true).result;
      const row = rows.get(target.name)!;
      row.rps.push(r.rps);
      row.errors += r.errors;
      row.non2xx += r.non2xx;
      row.p50.push(r.window.p50);
      row.p99.push(r.window.p99);
      log(
        `throughput round ${round + 1}/${config.rounds} ${target.name}: ${Math.round(r.rps)} req/s, ` +
          `p50 ${r.window.p50.toFixed(2)} ms, p99 ${r.window.p99.toFixed(2)} ms, errors ${r.errors}`,
      );
    }
  }
  return [...rows.values()];
}

// ----------------------------------------------------------- phase 2: reloads

interface ReloadRecord {
  ok: boolean;
  /** Reload command issued -> command returned. */
  commandMs: number;
  /** Reload command issued -> last worker of the previous generation gone. */
  oldGoneMs: number | undefined;
  note?: string;
}

interface ReloadPhase {
  name: string;
  steady: LoadSummary;
  during: LoadSummary;
  reloads: ReloadRecord[];
  leftovers: number[];
  /** Old workers killed because they outlived the graceful timeout (graft) or --kill-timeout (PM2). */
  killed: number;
  failureContext: string[];
}

interface Driven {
  reloads: ReloadRecord[];
  leftovers: number[];
  killed: number;
}

/** Steady baseline, then reloads under the same load; `drive` issues the reloads. */
async function reloadPhase(
  target: Target,
  drive: (run: LoadRun) => Promise<Driven>,
  context: (failures: LoadSummary['failures']) => string[],
): Promise<ReloadPhase> {
  await checkServes(target);
  if (config.warmupS > 0) await load(target.url, config.warmupS, false).result;
  log(`${target.name}: steady latency baseline, ${config.latencyS} s`);
  const steady = await load(target.url, config.latencyS, true).result;
  log(`${target.name}: steady p50 ${steady.window.p50.toFixed(2)} ms, p99 ${steady.window.p99.toFixed(2)} ms, errors ${steady.errors}`);

  // Bounded: long enough for every reload even if each is slow; stopped as soon as they are done.
  const cap = Math.ceil(config.reloads * (15 + config.gapMs / 1000) + 60);
  const run = load(target.url, cap, false);
  let driven: Driven;
  try {
    await sleep(2000); // the load is in full swing before the first reload
    run.record(true);
    driven = await drive(run);
    run.record(false);
    await sleep(1000);
  } finally {
    run.stop();
  }
  const during = await run.result;
  log(
    `${target.name}: during ${driven.reloads.length} reloads: errors ${during.errors} (timeouts ${during.timeouts}, resets ${during.resets}), ` +
      `non-2xx ${during.non2xx}, unanswered ${during.unanswered}, p50 ${during.window.p50.toFixed(2)} ms, p99 ${during.window.p99.toFixed(2)} ms`,
  );
  return { name: target.name, steady, during, ...driven, failureContext: during.failures.length ? context(during.failures) : [] };
}

async function driveGraft(graft: GraftTarget): Promise<Driven> {
  const issued: Array<{ t0: number; previous: number | undefined; record: ReloadRecord }> = [];
  let last: number | undefined;
  for (let i = 0; i < config.reloads; i++) {
    const r = await graft.reload();
    const record: ReloadRecord = { ok: r.ok, commandMs: r.command.endedAt - r.command.startedAt, oldGoneMs: undefined };
    if (!r.ok) record.note = `exit ${r.command.code}${r.command.timedOut ? ' (timed out)' : ''}: ${(r.command.stderr || r.command.stdout).trim().slice(0, 300)}`;
    issued.push({ t0: r.command.startedAt, previous: r.previous, record });
    if (r.generation !== undefined) last = r.generation;
    log(`graft reload ${i + 1}/${config.reloads}: ${r.ok ? `generation ${r.generation} serves, ${r.previous} draining` : `FAILED ${record.note}`} (${Math.round(record.commandMs)} ms)`);
    await sleep(config.gapMs);
  }
  // The old generations drain after their commands returned; wait for the last to retire.
  const pending = () => issued.filter((x) => x.previous !== undefined && !graft.retiredAt.has(x.previous));
  const deadline = performance.now() + 60_000;
  while (pending().length > 0 && performance.now() < deadline) await sleep(50);
  for (const x of issued) {
    const at = x.previous !== undefined ? graft.retiredAt.get(x.previous) : undefined;
    if (at !== undefined) x.record.oldGoneMs = at - x.t0;
    else if (x.record.ok) {
      x.record.ok = false;
      x.record.note = `generation ${x.previous} never retired`;
    }
  }
  return {
    reloads: issued.map((x) => x.record),
    leftovers: last !== undefined ? graft.leftovers(last) : [],
    killed: graft.killedAfterTimeout(),
  };
}

async function drivePm2(pm2: Pm2Target): Promise<Driven> {
  const reloads: ReloadRecord[] = [];
  for (let i = 0; i < config.reloads; i++) {
    const r = await pm2.reload();
    const t0 = r.command.startedAt;
    const record: ReloadRecord = {
      ok: r.ok,
      commandMs: r.command.endedAt - t0,
      oldGoneMs: r.oldGoneAt !== undefined ? Math.max(r.oldGoneAt, r.command.endedAt) - t0 : undefined,
    };
    if (!r.ok) {
      record.note =
        `exit ${r.command.code}${r.command.timedOut ? ' (timed out)' : ''}; old pids ${r.oldPids.join(',')}; ` +
        `${r.confirmed ? 'confirmed gone' : `last jlist ${r.seen || '(empty)'}`}; ${(r.command.stderr || r.command.stdout).trim().slice(-200)}`;
    }
    reloads.push(record);
    log(`PM2 reload ${i + 1}/${config.reloads}: ${r.ok ? `pids ${r.oldPids.join(',')} -> ${r.newPids.join(',')}` : `FAILED ${record.note}`} (${Math.round(record.commandMs)} ms)`);
    await sleep(config.gapMs);
  }
  return { reloads, leftovers: pm2.leftovers(), killed: pm2.killedAfterTimeout() };
}

/** The master's log lines within a second of each of the first failures. */
function graftContext(graft: GraftTarget, failures: LoadSummary['failures']): string[] {
  const out: string[] = [];
  const shown = new Set<LogLine>();
  for (const f of failures.slice(0, 5)) {
    out.push(`client saw ${f.code} at +${((f.at - startedAt) / 1000).toFixed(3)} s; master log around it:`);
    for (const l of graft.lines) {
      if (Math.abs(l.at - f.at) <= 1000 && !shown.has(l)) {
        shown.add(l);
        out.push(`  +${((l.at - startedAt) / 1000).toFixed(3)} s ${l.text}`);
      }
    }
  }
  return out;
}

// -------------------------------------------------------------------- report

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b ? '-' : `${(a / b).toFixed(2)}×`);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : undefined);

function report(rows: ThroughputRow[], phases: ReloadPhase[]): { markdown: string; goals: { ok: boolean; text: string }[] } {
  const base = rows.find((r) => r.name === 'node:cluster');
  const baseRps = base ? median(base.rps) : undefined;
  const lines: string[] = [];
  const goals: { ok: boolean; text: string }[] = [];

  lines.push(
    `### Steady throughput: ${config.workers} workers, ${config.connections} connections, pipelining 1, ` +
      `${config.durationS} s × ${config.rounds} interleaved rounds (median)`,
    '',
    '| supervisor | req/s vs node:cluster | rounds (req/s ÷ node:cluster median) | p99 vs node:cluster | failed | non-2xx |',
    '|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    const rounds = baseRps ? r.rps.map((x) => (x / baseRps).toFixed(2)).join(', ') : '-';
    lines.push(`| ${r.name} | ${ratio(median(r.rps), baseRps)} | ${rounds} | ${ratio(median(r.p99), base ? median(base.p99) : undefined)} | ${r.errors} | ${r.non2xx} |`);
  }
  lines.push('', `node:cluster median: ${fmt(baseRps)} req/s (absolute numbers on this shared box are noise; read the ratios).`, '');

  const graftRow = rows.find((r) => r.name === 'graft');
  if (graftRow && baseRps) {
    const q = median(graftRow.rps) / baseRps;
    goals.push({ ok: q >= 0.95, text: `graft steady throughput ≥ 0.95 of bare node:cluster: ${q.toFixed(2)}` });
  }

  if (phases.length) {
    const col = (f: (p: ReloadPhase) => string) => phases.map(f).join(' | ');
    const ok = (p: ReloadPhase) => p.reloads.filter((r) => r.ok);
    const gone = (p: ReloadPhase) => p.reloads.flatMap((r) => (r.oldGoneMs !== undefined ? [r.oldGoneMs] : []));
    const cmd = (p: ReloadPhase) => p.reloads.map((r) => r.commandMs);
    lines.push(
      `### ${config.reloads} reloads under keep-alive load: ${config.connections} connections, pipelining 1, ` +
        `a reload ${config.gapMs} ms after the previous command returned`,
      '',
      `| | ${col((p) => p.name)} |`,
      `|---|${col(() => '---')}|`,
      `| reloads that succeeded | ${col((p) => `${ok(p).length}/${p.reloads.length}`)} |`,
      `| requests answered during the reload run | ${col((p) => String(p.during.answered))} |`,
      `| **failed requests** (autocannon errors, timeouts included) | ${col((p) => `**${p.during.errors}**`)} |`,
      `| … of which connection resets | ${col((p) => String(p.during.resets))} |`,
      `| … of which timeouts (${config.timeoutS} s) | ${col((p) => String(p.during.timeouts))} |`,
      `| non-2xx responses | ${col((p) => String(p.during.non2xx))} |`,
      `| requests left unanswered on a closed connection, no error, no \`Connection: close\` ¹ | ${col((p) => String(p.during.unanswered))} |`,
      `| \`Connection: close\` responses (drained keep-alive connections) ² | ${col((p) => String(p.during.closeResponses))} |`,
      `| failed as a real client would see them (failed + unanswered) | ${col((p) => `**${p.during.errors + p.during.unanswered}**`)} |`,
      `| req/s over the reload run ÷ steady baseline | ${col((p) => ratio(p.during.rps, p.steady.rps))} |`,
      `| p50 during reloads ÷ steady | ${col((p) => `${ratio(p.during.window.p50, p.steady.window.p50)} (${fmt(p.during.window.p50, 1)} / ${fmt(p.steady.window.p50, 1)} ms)`)} |`,
      `| p99 during reloads ÷ steady | ${col((p) => `${ratio(p.during.window.p99, p.steady.window.p99)} (${fmt(p.during.window.p99, 1)} / ${fmt(p.steady.window.p99, 1)} ms)`)} |`,
      `| max latency during reloads | ${col((p) => `${fmt(p.during.window.max)} ms`)} |`,
      `| reload command → command returned, mean / max | ${col((p) => `${fmt(mean(cmd(p)))} / ${fmt(max(cmd(p)))} ms`)} |`,
      `| reload command → last old worker gone, mean / max | ${col((p) => `${fmt(mean(gone(p)))} / ${fmt(max(gone(p)))} ms`)} |`,
      `| old workers killed for outliving the graceful / kill timeout | ${col((p) => String(p.killed))} |`,
      `| old workers still alive at the end | ${col((p) => String(p.leftovers.length))} |`,
      `| steady baseline (${config.latencyS} s, no reloads): failed / non-2xx | ${col((p) => `${p.steady.errors} / ${p.steady.non2xx}`)} |`,
      '',
    );
    const g = phases.find((p) => p.name === 'graft');
    const p2 = phases.find((p) => p.name === 'PM2');
    if (g && p2) {
      lines.push(
        `graft ÷ PM2: reload-to-old-gone mean ${ratio(mean(gone(g)), mean(gone(p2)))}, ` +
          `p99 during reloads ${ratio(g.during.window.p99, p2.during.window.p99)}, ` +
          `failed requests ${g.during.errors} vs ${p2.during.errors}.`,
        '',
      );
    }
    lines.push(
      '¹ autocannon reconnects silently when the server closes a connection, dropping the request it had just written there; ' +
        'a real client would see that request fail ("socket hang up"). Counted here, not by autocannon.',
      '² autocannon ignores `Connection: close` and writes one more request on that connection, which the server then never answers; ' +
        'a conforming HTTP/1.1 client sends nothing more on it, so those are not failures and are not counted above ' +
        `(graft: ${g?.during.sentAfterClose ?? '-'}, PM2: ${p2?.during.sentAfterClose ?? '-'}).`,
      '',
      'Latency percentiles are over every response inside the window: for "steady", the whole baseline run; ' +
        'for "during reloads", from the first reload command until the last old worker was gone ' +
        '(so a supervisor whose reloads take longer spreads the same disturbance over more quiet time).',
      '',
    );
    if (p2 && p2.killed > 0) {
      lines.push(
        `PM2 SIGKILLed ${p2.killed} old workers that were still alive after --kill-timeout (its daemon log says so). ` +
          "app.js's SIGINT handler is PM2's documented graceful stop, `server.close()`, which since Node 19 closes the keep-alive " +
          'connections idle at that instant and waits for the others; under keep-alive load those never go idle, so the worker ' +
          'is killed with requests on its connections.',
        '',
      );
    }
    if (g) {
      const failed = g.during.errors + g.during.non2xx + g.during.unanswered;
      goals.push({
        ok: failed === 0 && ok(g).length === config.reloads && config.reloads >= 20,
        text: `graft: 0 failed requests over ${config.reloads} reloads (errors ${g.during.errors}, non-2xx ${g.during.non2xx}, unanswered ${g.during.unanswered}), ${ok(g).length}/${g.reloads.length} reloads ok`,
      });
    }
    for (const p of phases) {
      const bad = p.reloads.filter((r) => !r.ok);
      if (bad.length) lines.push(`${p.name} reloads that failed:`, '', ...bad.slice(0, 5).map((r) => `- ${r.note ?? '?'}`), '');
    }
    if (g && g.failureContext.length) lines.push('graft: failures and the master log around them:', '', '```', ...g.failureContext, '```', '');
  }

  lines.push('### Goals', '', ...goals.map((x) => `- ${x.ok ? 'PASS' : 'FAIL'}: ${x.text}`), '');
  return { markdown: lines.join('\n'), goals };
}

function commandLine(): string {
  const envs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const args = process.argv.slice(2).join(' ');
  const direct = `${envs}node --import tsx bench/reload/run.ts${args ? ' ' + args : ''}`;
  return process.env.npm_lifecycle_event === 'bench:reload' ? `${envs}npm run bench:reload${args ? ' -- ' + args : ''}   (= ${direct})` : direct;
}

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(config)}`);
  const register = (t: Target) => cleanups.push(() => t.stop());
  const cluster = await ClusterTarget.start(config.workers, register);
  const graft = await GraftTarget.start(config.workers, register);
  const pm2 = await Pm2Target.start(config.workers, register);
  const targets: Target[] = [cluster, graft, pm2];
  for (const t of targets) {
    await checkServes(t);
    log(`${t.name} serves on ${t.url}`);
  }

  const rows = await throughput(targets);
  await cluster.stop();

  const phases: ReloadPhase[] = [];
  phases.push(await reloadPhase(graft, () => driveGraft(graft), (f) => graftContext(graft, f)));
  phases.push(await reloadPhase(pm2, () => drivePm2(pm2), () => []));

  const { markdown, goals } = report(rows, phases);
  const cpu = cpus();
  const header = [
    '# bench/reload results',
    '',
    `- command: \`${commandLine()}\``,
    `- date: ${new Date().toISOString()}`,
    `- graft: ${graftRevision()}; node ${process.version}, ${process.platform}/${process.arch}; PM2 ${pm2Version()}; autocannon ${autocannonVersion()}`,
    `- machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GB, shared with other work; ` +
      'autocannon runs in the benchmark process on the same cores as the servers, so absolute times and req/s are noise: read ratios and counts.',
    `- app: bench/reload/app.js (node:http, answers after 5 ms with a 3-byte body), ${config.workers} workers under each supervisor`,
    `- graft: \`graft start bench/reload/app.js -w ${config.workers}\` (default drain: idle close 1 s, linger 2 s); reload = \`graft reload\`; ` +
      'old gone = its "generation retired" log line',
    `- PM2: \`pm2 start app.js -i ${config.workers} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` in an isolated PM2_HOME; reload = \`pm2 reload bench\`; ` +
      'old gone = old pids dead (polled every 10 ms after the command returned) and absent from `pm2 jlist`',
    `- total run time: ${((performance.now() - startedAt) / 1000).toFixed(0)} s; 1-minute load average ${loadAtStart} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
    '',
  ].join('\n');
  const full = `${header}\n${markdown}`;
  console.log(full);
  if (!flags['no-results']) {
    writeFileSync(resultsPath, full);
    log(`results written to ${relative(process.cwd(), resultsPath)}`);
  }
  if (goals.some((g) => !g.ok)) process.exitCode = 1;
}

/** The graft source measured: its commit, and whether src/ differs from it. */
function graftRevision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `commit ${commit}${dirty ? ' with uncommitted changes in src/' : ', src/ clean'}`;
  } catch {
    return 'revision unknown (not a git checkout)';
  }
}
const pm2Version = () => packageVersion('node_modules/pm2/package.json');
const autocannonVersion = () => packageVersion('node_modules/autocannon/package.json');
function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, path), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

try {
  await main();
} catch (err) {
  log(`failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  for (const l of liveLoads) l.stop();
  await cleanup();
}
