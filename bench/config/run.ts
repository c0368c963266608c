/**
 * bench/config: how fast a config change reaches every worker, and what
 * reading and keeping config costs, side by side with what a user would pick
 * instead, in one run.
 *
 * 1. graft, 4 workers: a config file write → every worker runs the new
 *    version (the master's "config applied" log line with that configVersion).
 * 2. graft, 4 workers: `graft config apply --set` over the control socket →
 *    the answer that every worker runs it.
 * 3. PM2, 4 workers (`pm2 start -i 4`): it cannot push config into running
 *    workers, so its users write the file and `pm2 reload`; timed until HTTP
 *    polling sees every worker serve the new value. graft is timed the same way
 *    (file write → HTTP polling) for a like-for-like ratio.
 * 4. Hot-path reads: `config.current.db.pool` against a plain object and
 *    node-config's `config.get('db.pool')` (child process, no master).
 * 5. Heap per retained snapshot against its JSON text (child process, --expose-gc).
 *
 *   node --import tsx bench/config/run.ts [--changes N] [--applies N] [--pm2-changes N] [--quick] ...
 *
 * Everything on 127.0.0.1; every loop is bounded in count and time; every
 * process started here is stopped on the way out (graft: SIGTERM; PM2: pm2 kill).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify as toYaml } from 'yaml';
import { runMain, tempDir } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import type { ApplyOutcome } from '../lib/graft.js';
import { getFresh } from '../lib/http.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { root, tsxImport } from '../lib/paths.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { runJson } from '../lib/proc.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { max, min, percentile, ratio } from '../lib/stats.js';
import { sleep, withTimeout } from '../lib/wait.js';
import { realisticConfig } from './fixture.js';

const here = join(root, 'bench/config');
const WORKERS = 4;

// ---------------------------------------------------------------- options

const { values, resultsPath } = parseOptions('config', {
  changes: { default: 100, quick: 10, min: 1, help: "graft: config file writes timed by the master's log" },
  applies: { default: 100, quick: 10, min: 1, help: 'graft: config apply --set over the control socket' },
  'poll-changes': { default: 20, quick: 3, min: 1, help: 'graft: file writes timed by HTTP polling, like PM2' },
  'pm2-changes': { default: 12, quick: 2, min: 1, help: 'PM2: file write + pm2 reload, timed by HTTP polling' },
  'pm2-budget': { default: 300, quick: 60, min: 10, unit: 'S', help: 'stop the PM2 loop after this long (at least 10 changes are wanted)' },
  pause: { default: 100, min: 0, unit: 'MS', help: 'pause between two changes' },
  reads: { default: 1e7, quick: 1e6, min: 1000, help: 'reads per hot-path loop' },
  rounds: { default: 7, quick: 3, min: 1, help: 'hot-path rounds (median)' },
  snapshots: { default: 1000, quick: 100, min: 10, help: 'retained snapshots for the memory part' },
});

const opts = {
  changes: values.changes,
  applies: values.applies,
  pollChanges: values['poll-changes'],
  pm2Changes: values['pm2-changes'],
  pm2BudgetMs: values['pm2-budget'] * 1000,
  pauseMs: values.pause,
  reads: values.reads,
  rounds: values.rounds,
  snapshots: values.snapshots,
};
/** Per change: how long we wait for it before calling it lost. */
const CHANGE_TIMEOUT_MS = 15_000;
/** HTTP polling: this many consecutive responses with the new value, from every worker, end a measurement. */
const STREAK = 20;

// ---------------------------------------------------------------- helpers

/** p50 as the table shows it (nearest rank), for the ratios next to it. */
const p50 = (values: number[]) => percentile(values, 0.5);

interface Reply {
  pid: number;
  greeting: string;
  version?: number;
}

/** One GET on a new connection (no keep-alive), so node:cluster's round robin spreads requests over every worker. */
async function get(port: number, timeoutMs = 2000): Promise<Reply> {
  const res = await getFresh(`http://127.0.0.1:${port}/`, timeoutMs);
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  return JSON.parse(res.body) as Reply;
}

interface PollResult {
  /** When every worker had been seen serving the new value within the final streak (undefined: never). */
  allAt: number | undefined;
  requests: number;
  /** Requests that got no answer (reset, refused, or nothing within REQUEST_TIMEOUT_MS). */
  failed: number;
  stale: number;
  /** When the last old-value response arrived. */
  lastStaleAt: number | undefined;
  /** Failed requests by error (ECONNRESET, timeout…). */
  failures: Record<string, number>;
}

/** A request with no answer by then counts as failed (a worker that accepted it and died, say). */
const REQUEST_TIMEOUT_MS = 2000;
/** Concurrent pollers: a request left hanging by a dying worker must not blind the measurement. */
const POLLERS = 2;
const POLL_PAUSE_MS = 2;

/**
 * GET until STREAK consecutive answers show `greeting` and they came from
 * `workers` distinct processes; an old-value answer starts over. A failed
 * request is counted and says nothing about which value is served, so it
 * does not. The time is when the last of the workers was first seen in that
 * final streak. With `stop`, the measurement also waits for that promise.
 */
async function pollUntilAllServe(port: number, greeting: string, workers: number, timeoutMs: number, stop?: { until: Promise<unknown> }): Promise<PollResult> {
  const deadline = performance.now() + timeoutMs;
  const out: PollResult = { allAt: undefined, requests: 0, failed: 0, stale: 0, lastStaleAt: undefined, failures: {} };
  let streak = 0;
  let seen = new Set<number>();
  let allAt: number | undefined;
  let stopDone = stop === undefined;
  let done = false;
  void stop?.until.finally(() => (stopDone = true));
  const poller = async () => {
    while (!done && performance.now() < deadline) {
      out.requests++;
      let reply: Reply;
      try {
        reply = await get(port, REQUEST_TIMEOUT_MS);
      } catch (err) {
        out.failed++;
        const kind = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        out.failures[kind] = (out.failures[kind] ?? 0) + 1;
        await sleep(5);
        continue;
      }
      if (done) return;
      if (reply.greeting !== greeting) {
        out.stale++;
        out.lastStaleAt = performance.now();
        streak = 0;
        seen = new Set();
        allAt = undefined;
        continue;
      }
      streak++;
      seen.add(reply.pid);
      if (allAt === undefined && seen.size >= workers) allAt = performance.now();
      if (allAt !== undefined && streak >= STREAK && stopDone) {
        out.allAt = allAt;
        done = true;
      }
      // Keep the polling light: it shares two cores with the supervisor it measures.
      await sleep(POLL_PAUSE_MS);
    }
  };
  await Promise.all(Array.from({ length: POLLERS }, poller));
  return out;
}

function configYaml(n: number): string {
  return toYaml(realisticConfig(n));
}

// ---------------------------------------------------------------- graft

interface Timed {
  ms: number[];
  /** Changes whose "config applied" came with another version than the expected one. */
  versionMismatches: number;
  /** Changes not seen within CHANGE_TIMEOUT_MS. */
  lost: number;
  /** Responses, right after the change was reported everywhere, that still showed the old value. */
  staleAfter: number;
  checkedAfter: number;
  /** Workers that served those checks (should be every worker). */
  workersSeen: number;
  rejected: number;
}

/** After a change is reported applied everywhere, 2 requests per worker must all show it. */
async function checkEveryWorker(port: number, greeting: string, timed: Timed, seen: Set<number>): Promise<void> {
  for (let i = 0; i < WORKERS * 2; i++) {
    timed.checkedAfter++;
    try {
      const r = await get(port);
      seen.add(r.pid);
      if (r.greeting !== greeting) timed.staleAfter++;
    } catch {
      timed.staleAfter++;
    }
  }
}

/** Part 1: write the file, wait for the master's "config applied" with the next version. */
async function graftFileChanges(g: Graft, file: string, count: number, first: number): Promise<{ timed: Timed; next: number }> {
  const timed: Timed = { ms: [], versionMismatches: 0, lost: 0, staleAfter: 0, checkedAfter: 0, workersSeen: 0, rejected: 0 };
  const seen = new Set<number>();
  let version = currentVersion(g);
  const budgetEnd = performance.now() + count * (CHANGE_TIMEOUT_MS / 10) + 60_000;
  let n = first;
  for (let i = 0; i < count && performance.now() < budgetEnd; i++, n++) {
    const from = g.lines.length;
    const expected = version + 1;
    const greeting = `change ${n}`;
    const t0 = performance.now();
    writeFileSync(file, configYaml(n));
    const hit = await g.waitFor(
      ({ record: r }) => r?.role === 'master' && (r.msg === 'config applied' || String(r.msg).startsWith('config change rejected')),
      from,
      CHANGE_TIMEOUT_MS,
    );
    if (!hit) {
      timed.lost++;
      version = currentVersion(g);
      continue;
    }
    const r = hit.line.record!;
    if (r.msg !== 'config applied') {
      timed.rejected++;
      version = Math.max(version, Number(r.attempted ?? version));
      continue;
    }
    timed.ms.push(hit.line.at - t0);
    version = typeof r.configVersion === 'number' ? r.configVersion : expected;
    if (version !== expected) timed.versionMismatches++;
    await checkEveryWorker(g.port, greeting, timed, seen);
    await sleep(opts.pauseMs);
  }
  timed.workersSeen = seen.size;
  return { timed, next: n };
}

function currentVersion(g: Graft): number {
  for (let i = g.lines.length - 1; i >= 0; i--) {
    const r = g.lines[i]!.record;
    if (r?.role === 'master' && (r.msg === 'config applied' || r.msg === 'config loaded' || r.msg === 'master running') && typeof r.configVersion === 'number') return r.configVersion;
  }
  return 1;
}

/** Part 2: `graft config apply --set greeting=…`, in process over the control socket. */
async function graftApplies(g: Graft, count: number): Promise<Timed & { notEveryWorker: number }> {
  const timed = { ms: [] as number[], versionMismatches: 0, lost: 0, staleAfter: 0, checkedAfter: 0, workersSeen: 0, rejected: 0, notEveryWorker: 0 };
  const seen = new Set<number>();
  let version = currentVersion(g);
  const budgetEnd = performance.now() + count * (CHANGE_TIMEOUT_MS / 10) + 60_000;
  for (let i = 0; i < count && performance.now() < budgetEnd; i++) {
    const greeting = `applied ${i}`;
    const t0 = performance.now();
    let outcome: ApplyOutcome;
    try {
      outcome = (await withTimeout(g.control({ cmd: 'config', action: 'apply', set: [`greeting=${greeting}`] }), CHANGE_TIMEOUT_MS, 'config apply')) as ApplyOutcome;
    } catch {
      timed.lost++;
      continue;
    }
    timed.ms.push(performance.now() - t0);
    if (outcome.version !== version + 1) timed.versionMismatches++;
    version = outcome.version;
    if (outcome.mode !== 'in-place' || outcome.workers.length !== WORKERS || outcome.workers.some((w) => w.configVersion !== outcome.version)) timed.notEveryWorker++;
    await checkEveryWorker(g.port, greeting, timed, seen);
    await sleep(opts.pauseMs);
  }
  timed.workersSeen = seen.size;
  return timed;
}

interface Polled {
  ms: number[];
  lost: number;
  requests: number;
  failed: number;
  stale: number;
  commandMs: number[];
  commandFailed: number;
  /** Changes where a worker still answered with the old value after the reload command had returned. */
  staleAfterCommand: number;
  /** For those: the latest such answer, ms after the command returned. */
  staleAfterCommandMs: number[];
  /** Changes with at least one failed request. */
  changesWithFailures: number;
  failures: Record<string, number>;
}

function newPolled(): Polled {
  return { ms: [], lost: 0, requests: 0, failed: 0, stale: 0, commandMs: [], commandFailed: 0, staleAfterCommand: 0, staleAfterCommandMs: [], changesWithFailures: 0, failures: {} };
}

/** Adds one change's polling, from the write at t0, to `out`. */
function addPoll(out: Polled, r: PollResult, t0: number): void {
  out.requests += r.requests;
  out.failed += r.failed;
  for (const [k, v] of Object.entries(r.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
  out.stale += r.stale;
  if (r.allAt === undefined) out.lost++;
  else out.ms.push(r.allAt - t0);
}

/** Part 3, graft side: file write → HTTP polling sees every worker serve it (no command: the master watches). */
async function graftPolledChanges(g: Graft, file: string, count: number, first: number): Promise<Polled> {
  const out = newPolled();
  const budgetEnd = performance.now() + count * CHANGE_TIMEOUT_MS;
  for (let i = 0, n = first; i < count && performance.now() < budgetEnd; i++, n++) {
    const greeting = `change ${n}`;
    const t0 = performance.now();
    writeFileSync(file, configYaml(n));
    addPoll(out, await pollUntilAllServe(g.port, greeting, WORKERS, CHANGE_TIMEOUT_MS), t0);
    await sleep(opts.pauseMs);
  }
  return out;
}

// ---------------------------------------------------------------- PM2

/** Part 3, PM2 side: file write + `pm2 reload` → HTTP polling sees every worker serve it. */
async function pm2Changes(pm2: Pm2, file: string, count: number, first: number): Promise<Polled> {
  const out = newPolled();
  const budgetEnd = performance.now() + opts.pm2BudgetMs;
  for (let i = 0, n = first; i < count && performance.now() < budgetEnd; i++, n++) {
    const greeting = `change ${n}`;
    const t0 = performance.now();
    writeFileSync(file, configYaml(n));
    let returnedAt = Infinity;
    const reload = pm2.command(['reload', pm2.app], 60_000).then((r) => {
      returnedAt = performance.now();
      out.commandMs.push(returnedAt - t0);
      if (r.code !== 0) out.commandFailed++;
      return r;
    });
    // Poll while the reload runs; the measurement ends only once the command has returned too.
    const r = await pollUntilAllServe(pm2.port, greeting, WORKERS, 60_000, { until: reload });
    await reload;
    if (r.lastStaleAt !== undefined && r.lastStaleAt > returnedAt) {
      out.staleAfterCommand++;
      out.staleAfterCommandMs.push(r.lastStaleAt - returnedAt);
    }
    if (r.failed > 0) out.changesWithFailures++;
    addPoll(out, r, t0);
    log(
      `PM2 change ${i + 1}: command returned ${fmt(returnedAt - t0, 0)} ms, every worker new ${r.allAt === undefined ? 'never' : fmt(r.allAt - t0, 0) + ' ms'}, ` +
        `${r.stale} old-value responses (the last at ${r.lastStaleAt === undefined ? '-' : fmt(r.lastStaleAt - t0, 0) + ' ms'}), ${r.failed} failed requests`,
    );
    await pm2.list().catch(() => []);
    await sleep(opts.pauseMs);
  }
  return out;
}

// ---------------------------------------------------------------- child processes (parts 4 and 5)

async function childJson<T>(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<T> {
  return (await runJson<T>(args, { env: { ...process.env, ...env }, timeoutMs })).value;
}

interface HotReads {
  reads: number;
  rounds: number;
  nsPerRead: Record<'empty' | 'plain' | 'graft' | 'graftLocal' | 'nodeConfig', number[]>;
}

interface SnapshotMemory {
  count: number;
  trials: number;
  jsonBytes: number;
  snapshotBytes: number[];
  parsedBytes: number[];
  changedPerSnapshot: number;
}

// ---------------------------------------------------------------- main

const fmt = (n: number, digits = 1) => num(n, digits, 'n/a');
const xf = (r: number) => times(r, { small: 0.1, smallDigits: 3, missing: 'n/a' });
const x = (a: number, b: number) => xf(ratio(a, b));
const p5099 = (ms: number[]) => `${fmt(percentile(ms, 0.5))} / ${fmt(percentile(ms, 0.99))}`;

async function main(): Promise<void> {
  const dir = tempDir('bench-config-');

  // Parts 4 and 5 first, while no other process of ours runs.
  log('[4/5] hot-path reads: plain object, graft config.current, node-config get');
  const jsonFile = join(dir, 'default.json');
  writeFileSync(jsonFile, JSON.stringify(realisticConfig(0), null, 2));
  const hot = await childJson<HotReads>(['--import', tsxImport, join(here, 'hot-read.ts')], {
    GRAFT_CONFIG: jsonFile,
    NODE_CONFIG_DIR: dir,
    NODE_ENV: '',
    SUPPRESS_NO_CONFIG_WARNING: '1',
    BENCH_READS: String(opts.reads),
    BENCH_ROUNDS: String(opts.rounds),
  }, 300_000);
  const ns = Object.fromEntries(Object.entries(hot.nsPerRead).map(([k, v]) => [k, p50(v)])) as Record<keyof HotReads['nsPerRead'], number>;
  // Ratios are paired per round (the variants of one round run back to back), then the median: steadier on a busy box than a ratio of medians.
  const paired = (a: keyof HotReads['nsPerRead'], b: keyof HotReads['nsPerRead']) => p50(hot.nsPerRead[a].map((v, i) => v / hot.nsPerRead[b][i]!));
  const hotRatio = { graftPlain: paired('graft', 'plain'), graftNodeConfig: paired('graft', 'nodeConfig'), localPlain: paired('graftLocal', 'plain') };

  log(`[5/5] heap per retained snapshot (${opts.snapshots} snapshots)`);
  const mem = await childJson<SnapshotMemory>(['--expose-gc', '--import', tsxImport, join(here, 'snapshot-memory.ts')], { BENCH_SNAPSHOTS: String(opts.snapshots) }, 120_000);
  const snapBytes = p50(mem.snapshotBytes);
  const parsedBytes = p50(mem.parsedBytes);

  // Parts 1-2 and graft's side of 3, on one graft master with 4 workers.
  const configFile = join(dir, 'app.yaml');
  writeFileSync(configFile, configYaml(0));
  let fileChanges: Timed;
  let applies: Timed & { notEveryWorker: number };
  let graftPolled: Polled;
  let graftPids: number[];
  log(`[1/5] graft: ${opts.changes} config file writes, ${WORKERS} workers`);
  const g = await Graft.start({ entry: join(here, 'app.ts'), workers: WORKERS, args: ['--config', configFile] });
  try {
    graftPids = await g.readyWorkerPids();
    if (graftPids.length !== WORKERS) throw new Error(`graft runs ${graftPids.length} ready workers, expected ${WORKERS}`);
    const part1 = await graftFileChanges(g, configFile, opts.changes, 1);
    fileChanges = part1.timed;
    log(`[3/5] graft: ${opts.pollChanges} config file writes timed by HTTP polling`);
    graftPolled = await graftPolledChanges(g, configFile, opts.pollChanges, part1.next);
    // Last: apply --set stays as the top layer, so file writes after it would not change greeting.
    log(`[2/5] graft: ${opts.applies} config apply --set over the control socket`);
    applies = await graftApplies(g, opts.applies);
    const after = await g.readyWorkerPids();
    if (after.length !== WORKERS || after.some((p) => !graftPids.includes(p))) log(`note: graft workers changed during the run: ${graftPids.join(',')} → ${after.join(',')}`);
  } finally {
    await g.stop();
  }
  const graftErrors = g.lines.filter((l) => l.record?.level === 'error').length;

  log(`[3/5] PM2: up to ${opts.pm2Changes} config file writes + pm2 reload, ${WORKERS} workers`);
  writeFileSync(configFile, configYaml(0));
  let pm2Polled: Polled;
  const pm2 = await Pm2.start({ app: 'bench-config', script: join(here, 'pm2-app.js'), workers: WORKERS, env: { APP_CONFIG: configFile } });
  try {
    pm2Polled = await pm2Changes(pm2, configFile, opts.pm2Changes, 1);
  } finally {
    await pm2.stop();
  }


  // ------------------------------------------------------------ the table
  const f1 = fileChanges.ms;
  const f2 = applies.ms;
  const rows: string[][] = [
    ['1', `graft: config file write → all ${WORKERS} workers run it (master's "config applied" log line)`, `${f1.length}/${opts.changes}`, p5099(f1), '—', '—'],
    ['2', `graft: \`config apply --set\` (control socket) → answer that all ${WORKERS} run it`, `${f2.length}/${opts.applies}`, p5099(f2), '—', `${x(p50(f2), p50(f1))} of row 1 (p50)`],
    ['3a', `config file write → all ${WORKERS} workers serve it, HTTP polling (graft: nothing else; PM2: + \`pm2 reload\`)`, `graft ${graftPolled.ms.length}/${opts.pollChanges}, PM2 ${pm2Polled.ms.length}/${opts.pm2Changes}`, p5099(graftPolled.ms), p5099(pm2Polled.ms), `${x(p50(graftPolled.ms), p50(pm2Polled.ms))} (p50), ${x(percentile(graftPolled.ms, 0.99), percentile(pm2Polled.ms, 0.99))} (p99)`],
    ['3b', 'row 1 (graft, log line) against PM2 (row 3a)', `${f1.length} / ${pm2Polled.ms.length}`, p5099(f1), p5099(pm2Polled.ms), `${x(p50(f1), p50(pm2Polled.ms))} (p50), ${x(percentile(f1, 0.99), percentile(pm2Polled.ms, 0.99))} (p99)`],
    ['4a', 'hot read `config.current.db.pool` (graft) vs the same read on a plain unfrozen object, ns/read', `${hot.rounds} rounds × ${hot.reads.toExponential(0)}`, fmt(ns.graft, 2), `plain ${fmt(ns.plain, 2)}`, xf(hotRatio.graftPlain)],
    ['4b', 'hot read `config.current.db.pool` (graft) vs node-config `config.get(\'db.pool\')`, ns/read', `${hot.rounds} rounds × ${hot.reads.toExponential(0)}`, fmt(ns.graft, 2), `node-config ${fmt(ns.nodeConfig, 1)}`, xf(hotRatio.graftNodeConfig)],
    ['4c', 'hot read from the snapshot held in a local (`const c = config.current; c.db.pool`) vs plain object, ns/read', `${hot.rounds} rounds × ${hot.reads.toExponential(0)}`, fmt(ns.graftLocal, 2), `plain ${fmt(ns.plain, 2)}`, xf(hotRatio.localPlain)],
    ['5a', `heap per retained snapshot (ConfigStore, ${mem.count} distinct versions) vs its JSON text, bytes`, `${mem.count} × ${mem.trials} trials`, fmt(snapBytes, 0), `JSON ${fmt(mem.jsonBytes, 0)}`, x(snapBytes, mem.jsonBytes)],
    ['5b', 'heap per retained snapshot vs the same config kept as a plain `JSON.parse()` object, bytes', `${mem.count} × ${mem.trials} trials`, fmt(snapBytes, 0), `JSON.parse ${fmt(parsedBytes, 0)}`, x(snapBytes, parsedBytes)],
  ];
  const table = markdownTable(['#', 'measurement', 'n', 'graft (p50 / p99 ms, or value)', 'peer (p50 / p99 ms, or value)', 'ratio graft / peer'], rows);

  const checks = [
    `graft, file writes (row 1): ${fileChanges.lost} lost, ${fileChanges.rejected} rejected, ${fileChanges.versionMismatches} with an unexpected configVersion; ` +
      `right after each "config applied", ${fileChanges.staleAfter} of ${fileChanges.checkedAfter} requests (to ${fileChanges.workersSeen} distinct workers) showed the old value`,
    `graft, applies (row 2): ${applies.lost} lost, ${applies.versionMismatches} with an unexpected version, ${applies.notEveryWorker} answers not listing all ${WORKERS} workers on the new version in place; ` +
      `right after each answer, ${applies.staleAfter} of ${applies.checkedAfter} requests (to ${applies.workersSeen} distinct workers) showed the old value`,
    `latency tails: row 1 max ${fmt(max(f1))} ms, ${f1.filter((v) => v > 200).length} of ${f1.length} over 200 ms; row 2 max ${fmt(max(f2))} ms, ${f2.filter((v) => v > 100).length} of ${f2.length} over 100 ms; PM2 (3a) min ${fmt(min(pm2Polled.ms))} ms`,
    `graft, polled (row 3a): ${graftPolled.lost} never seen everywhere; ${graftPolled.requests} requests, ${graftPolled.failed} failed${graftPolled.failed ? ` (${failureList(graftPolled.failures)})` : ''}, ${graftPolled.stale} old-value responses while waiting`,
    `PM2 (row 3a): ${pm2Polled.lost} never seen everywhere, ${pm2Polled.commandFailed} \`pm2 reload\` commands failed; ${pm2Polled.requests} requests, ${pm2Polled.failed} failed, ${pm2Polled.stale} old-value responses while waiting; ` +
      `\`pm2 reload\` command (write → command returned) p50 / p99 ${p5099(pm2Polled.commandMs)} ms; ` +
      `${pm2Polled.changesWithFailures} of ${pm2Polled.ms.length + pm2Polled.lost} reloads failed at least one request (${failureList(pm2Polled.failures)}); ` +
      `in ${pm2Polled.staleAfterCommand} a worker still answered with the old value after the command had returned` +
      (pm2Polled.staleAfterCommandMs.length ? ` (up to ${fmt(max(pm2Polled.staleAfterCommandMs), 0)} ms after)` : ''),
    `graft error log lines over the whole graft run: ${graftErrors}`,
    `hot reads (ratios in the table: median over rounds of the per-round ratio), ns/read medians: empty loop ${fmt(ns.empty, 2)}, plain ${fmt(ns.plain, 2)}, graft config.current ${fmt(ns.graft, 2)}, graft snapshot in a local ${fmt(ns.graftLocal, 2)}, node-config get ${fmt(ns.nodeConfig, 1)}`,
    `snapshot memory: ${fmt(mem.changedPerSnapshot, 1)} changed key paths per version; per-trial bytes/snapshot ${mem.snapshotBytes.map((b) => fmt(b, 0)).join(', ')}; JSON.parse ${mem.parsedBytes.map((b) => fmt(b, 0)).join(', ')}`,
  ];

  console.log(table);
  console.log('');
  for (const c of checks) console.log(`- ${c}`);

  if (resultsPath !== undefined) {
    const machine = host();
    const md = `${resultsHead('config', [`PM2 ${packageVersion('pm2')}`, `node-config ${packageVersion('config')}`, `zod ${packageVersion('zod')}`], [
      `machine: ${machine.cores} cores (${machine.model}), a shared 2-core box: absolute times are noise, read the ratios and counts`,
      `app: bench/config/app.ts under \`graft start bench/config/app.ts -w ${WORKERS} -p <port> --socket <tmp>/ctl.sock --config <tmp>/app.yaml\` (zod schema, GRAFT_LOG_FORMAT=json); bench/config/pm2-app.js under \`pm2 start pm2-app.js -i ${WORKERS} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` in an isolated PM2_HOME (reads the YAML file at boot); both answer \`{ pid, greeting, db.pool }\` from the config; the config is a realistic ~${fmt(mem.jsonBytes, 0)}-byte service config (bench/config/fixture.ts), each change a new greeting and a few other values`,
      `changes are sequential, ${opts.pauseMs} ms apart; HTTP polling = ${POLLERS} concurrent loops of one GET per new connection (node:cluster round robin reaches every worker) until ${STREAK} consecutive answers show the new value and came from all ${WORKERS} workers (an old value starts over; a failed request, no answer within ${REQUEST_TIMEOUT_MS} ms or a reset, is counted apart); the time is when the last worker was first seen with it`,
    ])}
## Results

${table}

## Checks

${checks.map((c) => `- ${c}`).join('\n')}

## Notes

- Rows 1 and 3a (graft) include the master's 50 ms quiet period after a file event (src/config/loader.ts coalesces one editor save, often several events, into one change); row 2 has none, which is most of the gap between rows 1 and 2.
- Row 3a times both supervisors the same way (file write → every worker seen serving the new value over HTTP); for PM2 that includes \`pm2 reload\` (the CLI starts, then the daemon replaces the workers two at a time, its default concurrency: start a new one, wait for its ready, stop the old one). Row 3b puts graft's own signal (the log line) against the same PM2 numbers.
- Row 2 runs last on the graft master: an \`apply --set\` value is an override layer above the file for the rest of the master's life, so file writes after it would no longer change \`greeting\`.
- Row 4: each variant has its own loop function and accumulates what it reads (checked against the expected sum) so no read is dead code; the empty-loop time above is the loop's own cost. \`config.current\` is a getter (a method call and a check per read); once held in a local, the frozen snapshot reads like a plain object (differences under ~0.5 ns/read, as in row 4c, move either way from run to run on this box: code alignment and load).
- Row 5: heap growth after full GCs (--expose-gc) while ${mem.count} \`store.snapshotInfo\` references are kept; each snapshot has its own deep copy of the data (structuredClone + deepFreeze, no sharing between versions) plus its changed key paths, hash and time.
`;
    writeResults(resultsPath, md);
  }
}

function failureList(failures: Record<string, number>): string {
  const list = Object.entries(failures).map(([k, v]) => `${v} × ${k === 'timeout' ? `no answer within ${REQUEST_TIMEOUT_MS} ms` : k}`);
  return list.length ? list.join(', ') : 'none';
}

await runMain(main);
