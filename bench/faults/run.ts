/**
 * bench/faults: the supervisor itself killed with SIGKILL under keep-alive
 * load, graft against PM2, side by side in one run, the same app (bench/reload/app.js)
 * with 2 workers under each.
 *
 * - graft: the master in control is killed (`kill -9 <master pid>`); its keeper
 *   starts a new master on the kept listening sockets.
 * - PM2: its God daemon is killed (`kill -9 $(cat $PM2_HOME/pm2.pid)`), the
 *   process that holds its cluster workers.
 *
 * Each kill comes on a fresh service, after the load has run for --settle ms
 * (so every load connection is held by a worker). Measured from the client's
 * side: requests failed (resets, refusals, timeouts) on 32 keep-alive
 * connections, and a fresh connection opened every --probe-every ms, each
 * refused, failed or answered, and how long the longest one waited; from the
 * supervisor's side: the time from the kill until it serves with all its
 * workers again.
 *
 *   node --import tsx bench/faults/run.ts [--kills N] [--window MS] [--quick] ...
 *
 * Everything on 127.0.0.1; every load run and probe is bounded in time; every
 * process started here is stopped on the way out, also on failure.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { builtPackage } from '../lib/built.js';
import { isAlive, onCleanup, runMain } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { loadDuring, stopAllLoads, type LoadSummary } from '../lib/load.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { median, max, ratio } from '../lib/stats.js';
import { sleep, waitUntil } from '../lib/wait.js';

const { values, quick, resultsPath } = parseOptions('faults', {
  kills: { default: 5, quick: 1, min: 1, env: 'BENCH_KILLS', help: 'kills per supervisor, each on a fresh service' },
  connections: { default: 32, min: 1, env: 'BENCH_CONNECTIONS', help: 'autocannon keep-alive connections, pipelining 1' },
  settle: { default: 2000, quick: 1000, min: 0, env: 'BENCH_SETTLE_MS', unit: 'MS', help: 'load before the kill' },
  window: { default: 8000, quick: 4000, min: 1000, env: 'BENCH_WINDOW_MS', unit: 'MS', help: 'how long a supervisor has to serve again after the kill' },
  'probe-every': { default: 25, min: 5, env: 'BENCH_PROBE_MS', unit: 'MS', help: 'a fresh connection every MS' },
  workers: { default: 2, min: 1, env: 'BENCH_WORKERS', help: 'workers for every supervisor' },
});
const config = {
  kills: values.kills,
  connections: values.connections,
  settleMs: values.settle,
  windowMs: values.window,
  probeEveryMs: values['probe-every'],
  workers: values.workers,
  timeoutS: 10,
};
const app = 'bench/reload/app.js';

// ------------------------------------------------------------------ the probe

interface ProbeResult {
  /** performance.now() when the connection was opened. */
  at: number;
  /** 'ok', or the error code the client saw. */
  outcome: string;
  ms: number;
}

/** A GET on a fresh connection every everyMs until stopped (bounded by maxMs): what a new client sees. */
function startProbe(url: string, everyMs: number, maxMs: number): { stop(): Promise<ProbeResult[]> } {
  const results: ProbeResult[] = [];
  const pending = new Set<Promise<void>>();
  const end = performance.now() + maxMs;
  let stopped = false;
  const one = () => {
    const at = performance.now();
    const p = new Promise<void>((resolve) => {
      const done = (outcome: string) => {
        results.push({ at, outcome, ms: performance.now() - at });
        resolve();
      };
      const req = http.get(url, { agent: false, timeout: config.timeoutS * 1000 }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}`));
        res.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
      req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    });
    pending.add(p);
    void p.then(() => pending.delete(p));
  };
  const timer = setInterval(() => (stopped || performance.now() > end ? clearInterval(timer) : one()), everyMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(pending);
      return results.sort((a, b) => a.at - b.at);
    },
  };
}

// ------------------------------------------------------------------ one kill

interface Kill {
  load: LoadSummary;
  /** Fresh connections opened after the kill, for windowMs. */
  probes: ProbeResult[];
  /** Kill -> the supervisor serves with all its workers again; undefined: not within the window. */
  backMs: number | undefined;
  /** Workers of the killed supervisor still alive at the end of the window. */
  orphans: number;
  /** graft: the worker boot times of the first start (its "worker ready" bootMs). */
  bootMs: number[];
  /** graft: kill -> the new master has started its workers (its "worker started" lines): the master's own part of a restart. */
  masterMs?: number | undefined;
  /** graft: of the workers the new master started, those it took from the standby's warm workers (the rest were forked). */
  warmTaken?: number;
  /** graft: the boot times of the workers the new master started. */
  restartBootMs?: number[];
}

/** Load and the probe from before the kill until `afterKill` has finished, plus a second. */
async function underFault(url: string, kill: () => Promise<number>, afterKill: (killedAt: number) => Promise<void>): Promise<{ load: LoadSummary; probes: ProbeResult[] }> {
  const probe = startProbe(url, config.probeEveryMs, config.settleMs + config.windowMs + 60_000);
  let killedAt = 0;
  const { summary } = await loadDuring(
    { url, connections: config.connections, durationS: Math.ceil((config.settleMs + config.windowMs) / 1000) + 60, timeoutS: config.timeoutS, settleMs: config.settleMs, tailMs: 1000 },
    async () => {
      killedAt = await kill();
      await afterKill(killedAt);
    },
  );
  const probes = (await probe.stop()).filter((p) => p.at >= killedAt);
  return { load: summary, probes };
}

async function killGraft(): Promise<Kill> {
  const g = await Graft.start({ entry: app, workers: config.workers, built: true });
  try {
    // The standby starts its warm workers a few seconds after it has loaded: the kill comes once it has.
    await g.settled();
    const bootMs = g.lines.flatMap((l) => (l.record?.msg === 'worker ready' && typeof l.record.bootMs === 'number' ? [l.record.bootMs] : []));
    let workers: number[] = [];
    let backMs: number | undefined;
    let masterMs: number | undefined;
    let restartBootMs: number[] = [];
    let warmTaken = 0;
    const { load, probes } = await underFault(
      g.url,
      async () => {
        const status = (await g.control({ cmd: 'status' })) as { master: { pid: number }; workers: Array<{ pid: number }> };
        workers = status.workers.map((w) => w.pid);
        process.kill(status.master.pid, 'SIGKILL');
        const at = performance.now();
        const from = g.lines.length;
        // The new master says it runs once its first generation's workers are all ready.
        const running = await g.waitFor((l) => l.record?.msg === 'master running' && l.record.pid !== status.master.pid, from, config.windowMs);
        if (running) {
          backMs = running.line.at - at;
          const by = (msg: string) => g.lines.slice(from).filter((l) => l.record?.msg === msg && l.record.pid === running.line.record?.pid);
          const forked = by('worker started');
          masterMs = forked.length ? forked.at(-1)!.at - at : undefined;
          warmTaken = forked.filter((l) => l.record?.warm === true).length;
          restartBootMs = by('worker ready').flatMap((l) => (typeof l.record?.bootMs === 'number' ? [l.record.bootMs] : []));
        }
        return at;
      },
      // The dead master's workers drain what they held, then exit; the load and the probe run the whole window, as for PM2.
      async (at) => {
        await waitUntil(() => !workers.some(isAlive), config.windowMs, 10);
        await sleep(Math.max(0, at + config.windowMs - performance.now()));
      },
    );
    return { load, probes, backMs, orphans: workers.filter(isAlive).length, bootMs, masterMs, restartBootMs, warmTaken };
  } finally {
    await g.stop();
  }
}

async function killPm2(): Promise<Kill> {
  const pm2 = await Pm2.start({ app: 'faults', script: app, workers: config.workers });
  try {
    let workers: number[] = [];
    let backMs: number | undefined;
    const { load, probes } = await underFault(
      pm2.url,
      async () => {
        workers = (await pm2.list()).map((p) => p.pid);
        process.kill(pm2.daemonPid()!, 'SIGKILL');
        return performance.now();
      },
      // Nothing restarts the daemon by itself (`pm2 resurrect`, a systemd unit or pm2-runtime's container would, later):
      // the window shows what clients get meanwhile. Full service again: all its workers answer a fresh connection.
      async (at) => {
        const tries = config.workers * 2;
        const back = await waitUntil(async () => (await answeredBy(pm2.url, tries)) === tries, config.windowMs, 100);
        if (back) backMs = performance.now() - at;
        else await sleep(Math.max(0, at + config.windowMs - performance.now()));
      },
    );
    return { load, probes, backMs, orphans: workers.filter(isAlive).length, bootMs: [] };
  } finally {
    await pm2.stop();
  }
}

/** How many of a burst of `n` requests on fresh connections were answered (0 when none is). */
async function answeredBy(url: string, n: number): Promise<number> {
  const tries = await Promise.all(
    Array.from({ length: n }, () =>
      fetch(url, { signal: AbortSignal.timeout(1000), headers: { connection: 'close' } })
        .then((r) => r.ok)
        .catch(() => false),
    ),
  );
  return tries.filter(Boolean).length;
}

// -------------------------------------------------------------------- report

interface Row {
  name: string;
  kills: Kill[];
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function report(rows: Row[]): { markdown: string; goals: Array<{ ok: boolean; text: string }> } {
  const cell = (f: (k: Kill[]) => string) => rows.map((r) => f(r.kills));
  const probes = (ks: Kill[]) => ks.flatMap((k) => k.probes);
  const refused = (ks: Kill[]) => probes(ks).filter((p) => p.outcome === 'ECONNREFUSED').length;
  const probeFailed = (ks: Kill[]) => probes(ks).filter((p) => p.outcome !== 'ok').length;
  const failed = (k: Kill) => k.load.errors + k.load.non2xx + k.load.unanswered;
  const back = (ks: Kill[]) => ks.flatMap((k) => (k.backMs !== undefined ? [k.backMs] : []));
  const table = markdownTable(
    ['', ...rows.map((r) => r.name)],
    [
      ['kills (each on a fresh service)', ...cell((ks) => String(ks.length))],
      ['requests answered on the load connections', ...cell((ks) => String(sum(ks.map((k) => k.load.answered))))],
      ['**failed requests** (resets, refusals, timeouts, non-2xx, unanswered)', ...cell((ks) => `**${sum(ks.map(failed))}**`)],
      ['… of which connection resets', ...cell((ks) => String(sum(ks.map((k) => k.load.resets))))],
      ['… of which refused reconnects', ...cell((ks) => String(sum(ks.map((k) => k.load.refused))))],
      [`fresh connections opened after the kill (one every ${config.probeEveryMs} ms)`, ...cell((ks) => String(probes(ks).length))],
      ['**… refused**', ...cell((ks) => `**${refused(ks)}**`)],
      ['… failed otherwise', ...cell((ks) => String(probeFailed(ks) - refused(ks)))],
      ['… answered; longest wait', ...cell((ks) => `${probes(ks).filter((p) => p.outcome === 'ok').length}; ${num(max(probes(ks).filter((p) => p.outcome === 'ok').map((p) => p.ms)))} ms`)],
      [
        `kill → serving with all workers again, median / max (within ${config.windowMs / 1000} s)`,
        ...cell((ks) => (back(ks).length ? `${num(median(back(ks)))} / ${num(max(back(ks)))} ms (${back(ks).length}/${ks.length})` : `never (0/${ks.length})`)),
      ],
      [`workers of the killed supervisor alive ${config.windowMs / 1000} s after the kill`, ...cell((ks) => String(sum(ks.map((k) => k.orphans))))],
    ],
  );
  const lines = [
    `### The supervisor killed with SIGKILL under ${config.connections} keep-alive connections, ${config.workers} workers`,
    '',
    table,
    '',
    `"Serving with all workers again": graft, the new master's "master running" line (its workers are all ready); PM2, a burst of ${config.workers * 2} fresh connections all answered. ` +
      `PM2 has no keeper: nothing restarts its daemon by itself (\`pm2 resurrect\` from a systemd unit or a container restart would, later), and its cluster workers exit with it.`,
    '',
    'autocannon reconnects at once after a refusal, so refused reconnects count attempts, not users; the fresh connections (one every ' +
      `${config.probeEveryMs} ms) are the measure of what new clients meet.`,
    '',
  ];
  const goals: Array<{ ok: boolean; text: string }> = [];
  const g = rows.find((r) => r.name === 'graft');
  if (g) {
    const boot = median(g.kills.flatMap((k) => k.bootMs));
    const restartBoot = median(g.kills.map((k) => max(k.restartBootMs ?? [])));
    const masterPart = median(g.kills.flatMap((k) => (k.masterMs !== undefined ? [k.masterMs] : [])));
    const warm = sum(g.kills.map((k) => k.warmTaken ?? 0));
    const answered = probes(g.kills).filter((p) => p.outcome === 'ok');
    lines.push(
      `graft, for scale: a worker's boot (its "worker ready" bootMs at the first start) took ${num(boot)} ms (median), so a restart took ${times(ratio(median(back(g.kills)), boot))} a worker boot. ` +
        `Its parts (medians): the keeper's standby master, already loaded, takes over and has started its workers ${num(masterPart)} ms after the kill ` +
        `(${warm} of the ${g.kills.length * config.workers} restart workers over the ${g.kills.length} kills were the standby's warm workers, Node and graft already loaded; the others were forked); ` +
        `then those workers boot, under the load, in ${num(restartBoot)} ms (the slower of the ${config.workers}); ` +
        `the fresh connections that arrived meanwhile waited in the kernel's backlog (${answered.length} answered, the longest after ${num(max(answered.map((p) => p.ms)))} ms).`,
      '',
    );
    goals.push({ ok: sum(g.kills.map(failed)) === 0, text: `graft: 0 failed requests over ${g.kills.length} master kills (${sum(g.kills.map(failed))})` });
    goals.push({ ok: refused(g.kills) === 0 && probeFailed(g.kills) === 0, text: `graft: 0 refused or failed fresh connections after the kills (${refused(g.kills)} refused, ${probeFailed(g.kills)} failed)` });
    goals.push({ ok: back(g.kills).length === g.kills.length, text: `graft: serving with all workers again after every kill (${back(g.kills).length}/${g.kills.length})` });
    goals.push({ ok: median(back(g.kills)) <= boot, text: `graft: serving with all workers again within one worker boot (median ${num(median(back(g.kills)))} ms against ${num(boot)} ms)` });
    goals.push({ ok: sum(g.kills.map((k) => k.orphans)) === 0, text: `graft: the dead master's workers drained and exited (${sum(g.kills.map((k) => k.orphans))} left)` });
  }
  lines.push('### Goals', '', ...goals.map((x) => `- ${x.ok ? 'PASS' : 'FAIL'}: ${x.text}`), '');
  return { markdown: lines.join('\n'), goals };
}

// ---------------------------------------------------------------------- main

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(config)}`);
  builtPackage();
  onCleanup(stopAllLoads);
  const rows: Row[] = [
    { name: 'graft', kills: [] },
    { name: 'PM2', kills: [] },
  ];
  for (let i = 0; i < config.kills; i++) {
    // Interleaved, so neither always runs on a warmer or a busier machine.
    for (const row of i % 2 === 0 ? rows : [...rows].reverse()) {
      const k = row.name === 'graft' ? await killGraft() : await killPm2();
      row.kills.push(k);
      const refused = k.probes.filter((p) => p.outcome === 'ECONNREFUSED').length;
      log(
        `${row.name} kill ${i + 1}/${config.kills}: failed ${k.load.errors + k.load.non2xx + k.load.unanswered} (resets ${k.load.resets}, refused ${k.load.refused}), ` +
          `fresh connections ${k.probes.length} (refused ${refused}), back after ${k.backMs === undefined ? 'never' : `${Math.round(k.backMs)} ms`}, orphans ${k.orphans}`,
      );
    }
  }
  const { markdown, goals } = report(rows);
  const machine = host();
  const header = resultsHead('faults', [`PM2 ${packageVersion('pm2')}`, `autocannon ${packageVersion('autocannon')}`], [
    `machine: ${machine.cores} cores (${machine.model}), ${machine.memoryGb} GB, shared with other work; the load runs in the benchmark process on the same cores: read counts, not times.`,
    `app: bench/reload/app.js (node:http, answers after 5 ms), ${config.workers} workers under each supervisor; the kill after ${config.settleMs} ms of load`,
    `graft: \`graft start bench/reload/app.js -w ${config.workers}\` as installed (dist/); killed: the master in control`,
    `PM2: \`pm2 start app.js -i ${config.workers} --wait-ready\` in an isolated PM2_HOME; killed: its God daemon (PM2_HOME/pm2.pid)`,
  ]);
  const full = `${header}\n${markdown}`;
  console.log(full);
  writeResults(resultsPath, full);
  if (!quick && goals.some((g) => !g.ok)) process.exitCode = 1;
}

await runMain(main);
