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
 * 3. With --baseline REF: graft as installed from that commit too (a git
 *    worktree, its own npm ci and build), in the same rounds and with its own
 *    reloads: an A/B of the request path and the reload path on one machine.
 *
 *   node --import tsx bench/reload/run.ts [--duration S] [--rounds N] [--reloads N] [--baseline REF] [--quick] ...
 *
 * Everything on 127.0.0.1; every load run is bounded in time; every process
 * started here is stopped on the way out, also on failure or Ctrl-C.
 */
import { onCleanup, runMain } from '../lib/cleanup.js';
import { Cluster } from '../lib/cluster-driver.js';
import { builtAt, builtPackage } from '../lib/built.js';
import { Graft } from '../lib/graft-driver.js';
import { loadDuring, measureLoad, stopAllLoads, type LoadSummary } from '../lib/load.js';
import { benchStart, log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import type { Line } from '../lib/proc.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { mean, max, median, ratio } from '../lib/stats.js';
import { sleep } from '../lib/wait.js';

// ---------------------------------------------------------------- configuration

const { values, quick, resultsPath } = parseOptions('reload', {
  connections: { default: 64, min: 1, env: 'BENCH_CONNECTIONS', help: 'autocannon connections, pipelining 1' },
  duration: { default: 8, quick: 2, min: 1, env: 'BENCH_DURATION', unit: 'S', help: 'each steady throughput measurement' },
  rounds: { default: 3, quick: 1, min: 1, env: 'BENCH_ROUNDS', help: 'interleaved throughput rounds (median)' },
  warmup: { default: 2, quick: 1, min: 0, env: 'BENCH_WARMUP', unit: 'S', help: 'warm-up before each measurement' },
  reloads: { default: 20, quick: 3, min: 1, env: 'BENCH_RELOADS', help: 'reloads under load, per supervisor' },
  gap: { default: 1000, quick: 500, min: 0, env: 'BENCH_RELOAD_GAP_MS', unit: 'MS', help: 'pause after each reload command returns' },
  'latency-duration': { default: 10, quick: 3, min: 1, env: 'BENCH_LATENCY_DURATION', unit: 'S', help: 'steady phase for the latency baseline' },
  workers: { default: 2, min: 1, env: 'BENCH_WORKERS', help: 'workers for every supervisor' },
  baseline: { type: 'string', default: '', unit: 'REF', help: 'also run graft as installed from this commit, beside the current tree (an A/B)' },
});

const config = {
  connections: values.connections,
  durationS: values.duration,
  rounds: values.rounds,
  warmupS: values.warmup,
  reloads: values.reloads,
  gapMs: values.gap,
  latencyS: values['latency-duration'],
  workers: values.workers,
  baseline: values.baseline,
  timeoutS: 10,
};
const app = 'bench/reload/app.js';

/** A supervisor serving app.js. */
interface Target {
  name: string;
  url: string;
}

/** A warm-up, then durationS of load with every latency recorded. */
function measure(url: string, durationS: number): Promise<LoadSummary> {
  return measureLoad({ url, connections: config.connections, durationS, timeoutS: config.timeoutS, warmupS: config.warmupS });
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

async function throughput(targets: Target[]): Promise<ThroughputRow[]> {
  const rows = new Map(targets.map((t) => [t.name, { name: t.name, rps: [], errors: 0, non2xx: 0, p50: [], p99: [] } as ThroughputRow]));
  for (let round = 0; round < config.rounds; round++) {
    // Rotate the order each round, so no supervisor always goes first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const target of order) {
      const r = await measure(target.url, config.durationS);
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
  drive: () => Promise<Driven>,
  context: (failures: LoadSummary['failures']) => string[],
): Promise<ReloadPhase> {
  await checkServes(target);
  log(`${target.name}: steady latency baseline, ${config.latencyS} s (after ${config.warmupS} s of warm-up)`);
  const steady = await measure(target.url, config.latencyS);
  log(`${target.name}: steady p50 ${steady.window.p50.toFixed(2)} ms, p99 ${steady.window.p99.toFixed(2)} ms, errors ${steady.errors}`);

  // Bounded: long enough for every reload even if each is slow; stopped as soon as they are done.
  const cap = Math.ceil(config.reloads * (15 + config.gapMs / 1000) + 60);
  const { value: driven, summary: during } = await loadDuring(
    { url: target.url, connections: config.connections, durationS: cap, timeoutS: config.timeoutS, settleMs: 2000, tailMs: 1000 },
    drive,
  );
  log(
    `${target.name}: during ${driven.reloads.length} reloads: errors ${during.errors} (timeouts ${during.timeouts}, resets ${during.resets}), ` +
      `non-2xx ${during.non2xx}, unanswered ${during.unanswered}, p50 ${during.window.p50.toFixed(2)} ms, p99 ${during.window.p99.toFixed(2)} ms`,
  );
  return { name: target.name, steady, during, ...driven, failureContext: during.failures.length ? context(during.failures) : [] };
}

async function driveGraft(graft: Graft): Promise<Driven> {
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
  await graft.until(() => issued.every((x) => x.previous === undefined || graft.retiredAt.has(x.previous)), 60_000);
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

async function drivePm2(pm2: Pm2): Promise<Driven> {
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
function graftContext(graft: Graft, failures: LoadSummary['failures']): string[] {
  const out: string[] = [];
  const shown = new Set<Line>();
  for (const f of failures.slice(0, 5)) {
    out.push(`client saw ${f.code} at +${((f.at - benchStart) / 1000).toFixed(3)} s; master log around it:`);
    for (const l of graft.lines) {
      if (Math.abs(l.at - f.at) <= 1000 && !shown.has(l)) {
        shown.add(l);
        out.push(`  +${((l.at - benchStart) / 1000).toFixed(3)} s ${l.text}`);
      }
    }
  }
  return out;
}

// -------------------------------------------------------------------- report

const x = (a: number | undefined, b: number | undefined) => times(ratio(a, b));

function report(rows: ThroughputRow[], phases: ReloadPhase[]): { markdown: string; goals: { ok: boolean; text: string }[] } {
  const base = rows.find((r) => r.name === 'node:cluster');
  const baseRps = base ? median(base.rps) : undefined;
  const lines: string[] = [];
  const goals: { ok: boolean; text: string }[] = [];

  lines.push(
    `### Steady throughput: ${config.workers} workers, ${config.connections} connections, pipelining 1, ` +
      `${config.durationS} s × ${config.rounds} interleaved rounds (median)`,
    '',
    markdownTable(
      ['supervisor', 'req/s vs node:cluster', 'rounds (req/s ÷ node:cluster median)', 'p99 vs node:cluster', 'failed', 'non-2xx'],
      rows.map((r) => [
        r.name,
        x(median(r.rps), baseRps),
        baseRps ? r.rps.map((rps) => (rps / baseRps).toFixed(2)).join(', ') : '-',
        x(median(r.p99), base ? median(base.p99) : undefined),
        String(r.errors),
        String(r.non2xx),
      ]),
    ),
  );
  lines.push('', `node:cluster median: ${num(baseRps)} req/s (absolute numbers on this shared box are noise; read the ratios).`, '');

  const graftRow = rows.find((r) => r.name === 'graft');
  if (graftRow && base && baseRps) {
    const q = median(graftRow.rps) / baseRps;
    goals.push({ ok: q >= 0.97, text: `graft steady throughput ≥ 0.97 of bare node:cluster: ${q.toFixed(2)}` });
    const p99 = median(graftRow.p99) / median(base.p99);
    goals.push({ ok: p99 <= 1.1, text: `graft steady p99 ≤ 1.1× bare node:cluster's: ${p99.toFixed(2)}` });
  }

  if (phases.length) {
    const row = (label: string, f: (p: ReloadPhase) => string) => [label, ...phases.map(f)];
    const ok = (p: ReloadPhase) => p.reloads.filter((r) => r.ok);
    const gone = (p: ReloadPhase) => p.reloads.flatMap((r) => (r.oldGoneMs !== undefined ? [r.oldGoneMs] : []));
    const cmd = (p: ReloadPhase) => p.reloads.map((r) => r.commandMs);
    lines.push(
      `### ${config.reloads} reloads under keep-alive load: ${config.connections} connections, pipelining 1, ` +
        `a reload ${config.gapMs} ms after the previous command returned`,
      '',
      markdownTable(
        ['', ...phases.map((p) => p.name)],
        [
          row('reloads that succeeded', (p) => `${ok(p).length}/${p.reloads.length}`),
          row('requests answered during the reload run', (p) => String(p.during.answered)),
          row('**failed requests** (autocannon errors, timeouts included)', (p) => `**${p.during.errors}**`),
          row('… of which connection resets', (p) => String(p.during.resets)),
          row(`… of which timeouts (${config.timeoutS} s)`, (p) => String(p.during.timeouts)),
          row('non-2xx responses', (p) => String(p.during.non2xx)),
          row('requests left unanswered on a closed connection, no error, no `Connection: close` ¹', (p) => String(p.during.unanswered)),
          row('`Connection: close` responses (drained keep-alive connections) ²', (p) => String(p.during.closeResponses)),
          row('failed as a real client would see them (failed + unanswered)', (p) => `**${p.during.errors + p.during.unanswered}**`),
          row('req/s over the reload run ÷ steady baseline', (p) => x(p.during.rps, p.steady.rps)),
          row('p50 during reloads ÷ steady', (p) => `${x(p.during.window.p50, p.steady.window.p50)} (${num(p.during.window.p50, 1)} / ${num(p.steady.window.p50, 1)} ms)`),
          row('p99 during reloads ÷ steady', (p) => `${x(p.during.window.p99, p.steady.window.p99)} (${num(p.during.window.p99, 1)} / ${num(p.steady.window.p99, 1)} ms)`),
          row('max latency during reloads', (p) => `${num(p.during.window.max)} ms`),
          row('reload command → command returned, mean / max', (p) => `${num(mean(cmd(p)))} / ${num(max(cmd(p)))} ms`),
          row('reload command → last old worker gone, mean / max', (p) => `${num(mean(gone(p)))} / ${num(max(gone(p)))} ms`),
          row('old workers killed for outliving the graceful / kill timeout', (p) => String(p.killed)),
          row('old workers still alive at the end', (p) => String(p.leftovers.length)),
          row(`steady baseline (${config.latencyS} s, no reloads): failed / non-2xx`, (p) => `${p.steady.errors} / ${p.steady.non2xx}`),
        ],
      ),
      '',
    );
    const g = phases.find((p) => p.name === 'graft');
    const p2 = phases.find((p) => p.name === 'PM2');
    const b = phases.find((p) => p.name.startsWith('graft at '));
    if (g && p2) {
      lines.push(
        `graft ÷ PM2: reload-to-old-gone mean ${x(mean(gone(g)), mean(gone(p2)))}, ` +
          `p99 during reloads ${x(g.during.window.p99, p2.during.window.p99)}, ` +
          `failed requests ${g.during.errors} vs ${p2.during.errors}.`,
        '',
      );
    }
    if (g && b) {
      const bRow = rows.find((r) => r.name === b.name);
      const q = ratio(mean(gone(g)), mean(gone(b)));
      lines.push(
        `graft ÷ ${b.name} (the A/B): steady req/s ${x(graftRow && median(graftRow.rps), bRow && median(bRow.rps))}, ` +
          `steady p99 ${x(graftRow && median(graftRow.p99), bRow && median(bRow.p99))}, ` +
          `reload-to-old-gone mean ${times(q)} (${num(mean(gone(g)))} / ${num(mean(gone(b)))} ms), median ${x(median(gone(g)), median(gone(b)))}.`,
        '',
      );
      // One commit's reload-to-old-gone mean moves by up to 10 % between runs here: that is the tolerance.
      goals.push({ ok: q !== undefined && q <= 1.1, text: `graft: reload → old gone no slower than ${b.name} (mean, within the 10 % a rerun moves): ${times(q)}` });
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

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(config)}`);
  builtPackage();
  const baseline = config.baseline ? builtAt(config.baseline) : undefined;
  if (baseline) log(`baseline: graft at ${baseline.commit}, built in ${baseline.bin}`);
  const cluster = await Cluster.start(app, config.workers);
  const graft = await Graft.start({ entry: app, workers: config.workers, built: true });
  const before = baseline ? { name: `graft at ${baseline.commit}`, graft: await Graft.start({ entry: app, workers: config.workers, bin: baseline.bin }) } : undefined;
  const pm2 = await Pm2.start({ app: 'bench', script: app, workers: config.workers });
  onCleanup(stopAllLoads);
  const targets: Target[] = [
    { name: 'node:cluster', url: cluster.url },
    { name: 'graft', url: graft.url },
    ...(before ? [{ name: before.name, url: before.graft.url }] : []),
    { name: 'PM2', url: pm2.url },
  ];
  for (const t of targets) {
    await checkServes(t);
    log(`${t.name} serves on ${t.url}`);
  }

  const rows = await throughput(targets);
  await cluster.stop();

  const phases: ReloadPhase[] = [];
  const target = (name: string) => targets.find((t) => t.name === name)!;
  phases.push(await reloadPhase(target('graft'), () => driveGraft(graft), (f) => graftContext(graft, f)));
  if (before) phases.push(await reloadPhase(target(before.name), () => driveGraft(before.graft), (f) => graftContext(before.graft, f)));
  phases.push(await reloadPhase(target('PM2'), () => drivePm2(pm2), () => []));

  const { markdown, goals } = report(rows, phases);
  const machine = host();
  const header = resultsHead('reload', [`PM2 ${packageVersion('pm2')}`, `autocannon ${packageVersion('autocannon')}`], [
    `machine: ${machine.cores} cores (${machine.model}), ${machine.memoryGb} GB, shared with other work; ` +
      'autocannon runs in the benchmark process on the same cores as the servers, so absolute times and req/s are noise: read ratios and counts.',
    `app: bench/reload/app.js (node:http, answers after 5 ms with a 3-byte body), ${config.workers} workers under each supervisor`,
    `graft: \`graft start bench/reload/app.js -w ${config.workers}\` as installed (dist/; default drain: idle close 1 s, linger 2 s); reload = \`graft reload\`; ` +
      'old gone = its "generation retired" log line',
    ...(baseline ? [`graft at ${baseline.commit}: the same, as installed from a worktree of that commit (its own \`npm ci\` and build): the A/B`] : []),
    `PM2: \`pm2 start app.js -i ${config.workers} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` in an isolated PM2_HOME; reload = \`pm2 reload bench\`; ` +
      'old gone = old pids dead (polled every 10 ms after the command returned) and absent from `pm2 jlist`',
  ]);
  const full = `${header}\n${markdown}`;
  console.log(full);
  writeResults(resultsPath, full);
  // A quick run is a smoke test: too short for the goals (20 reloads at least), which it only shows.
  if (!quick && goals.some((g) => !g.ok)) process.exitCode = 1;
}

await runMain(main);
