/**
 * bench/swap: in-process code swap (graft --swap) side by side with what a
 * user would do otherwise, in one run.
 *
 * 1. File change → the new code serves in every worker (4 workers): graft
 *    --swap --watch (the master's "swap applied in every worker" line), p50 and
 *    p99 over 100 changes, against a process-level reload of the same app:
 *    PM2 7 `pm2 reload` and graft's own --watch worker reload, 10 changes each.
 *    Fresh-connection GETs confirm every answer then carries the new version.
 * 2. Heap growth per swap (child processes with --expose-gc): 1000 swaps of a
 *    module holding 1 MB of heap data with swappable(), against 1000
 *    cache-busting import(url + '?v=' + i) of the same module.
 * 3. Keep-alive load (autocannon, 64 connections) while 100 swaps are done
 *    through the control socket, against a steady phase without swaps.
 *
 *   node --import tsx bench/swap/run.ts [--changes N] [--peer-changes N] [--heap-swaps N] ...
 *
 * Everything on 127.0.0.1; every loop is bounded in count and time; every
 * process started here is stopped on the way out (graft: SIGTERM then
 * SIGKILL of the master and its workers; PM2: `pm2 kill` in an isolated PM2_HOME).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { graftReloadSeries, pm2Series, swapSeries, type ChangeOptions, type ChangeSeries } from './change-latency.js';
import { cleanup, log, percentile, root } from './common.js';
import { heapChildArgs, heapPair, type HeapOptions, type HeapPair } from './heap.js';
import { loadDuringSwaps, type LoadOptions, type LoadPhase } from './under-load.js';

// ---------------------------------------------------------------- configuration

const flags = parseArgs({
  args: process.argv.slice(2),
  options: {
    workers: { type: 'string' },
    changes: { type: 'string' },
    'peer-changes': { type: 'string' },
    warmup: { type: 'string' },
    gap: { type: 'string' },
    peers: { type: 'string' },
    'heap-swaps': { type: 'string' },
    'heap-kb': { type: 'string' },
    'max-old-space': { type: 'string' },
    'load-swaps': { type: 'string' },
    'swap-gap': { type: 'string' },
    connections: { type: 'string' },
    steady: { type: 'string' },
    parts: { type: 'string' },
    out: { type: 'string' },
    'no-results': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
}).values;

if (flags.help) {
  console.log(`node --import tsx bench/swap/run.ts [options]
  --workers N         workers in every setup                               (4)
  --changes N         file changes measured for graft --swap --watch       (100)
  --peer-changes N    file changes measured for each process-level peer    (10)
  --warmup N          changes made first and not measured, per series      (3)
  --gap MS            pause after a change is confirmed                    (300)
  --peers LIST        process-level peers: pm2,graft-reload                (pm2,graft-reload)
  --heap-swaps N      loads after the first, per side, in part 2           (1000)
  --heap-kb KB        heap data the module holds, both sides               (1024)
  --max-old-space MB  V8 old-space limit of both heap children             (4096)
  --load-swaps N      swaps under load in part 3                           (100)
  --swap-gap MS       pause after each swap under load                     (0: back to back)
  --connections N     autocannon connections, pipelining 1                 (64)
  --steady S          steady phase without swaps                           (10)
  --parts LIST        which parts to run: 1,2,3                            (1,2,3)
  --out PATH          results file                                         (bench/swap/RESULTS.md)
  --no-results        print only, do not write the results file`);
  process.exit(0);
}

function numberOption(raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

const workers = numberOption(flags.workers, 'workers', 4, 1);
const change: ChangeOptions = {
  workers,
  changes: numberOption(flags.changes, 'changes', 100, 1),
  warmup: numberOption(flags.warmup, 'warmup', 3, 0),
  gapMs: numberOption(flags.gap, 'gap', 300, 0),
  timeoutMs: 60_000,
};
const peerChanges = numberOption(flags['peer-changes'], 'peer-changes', 10, 1);
const peers = (flags.peers ?? 'pm2,graft-reload').split(',').filter(Boolean);
for (const p of peers) if (p !== 'pm2' && p !== 'graft-reload') throw new Error(`--peers: unknown peer ${p} (pm2, graft-reload)`);
const heap: HeapOptions = {
  count: numberOption(flags['heap-swaps'], 'heap-swaps', 1000, 1),
  kb: numberOption(flags['heap-kb'], 'heap-kb', 1024, 1),
  maxOldSpaceMb: numberOption(flags['max-old-space'], 'max-old-space', 4096, 256),
};
const loadOptions: LoadOptions = {
  workers,
  connections: numberOption(flags.connections, 'connections', 64, 1),
  swaps: numberOption(flags['load-swaps'], 'load-swaps', 100, 1),
  gapMs: numberOption(flags['swap-gap'], 'swap-gap', 0, 0),
  steadyS: numberOption(flags.steady, 'steady', 10, 1),
  warmupS: 2,
  timeoutS: 10,
};
const parts = new Set((flags.parts ?? '1,2,3').split(',').map((p) => p.trim()));
const resultsPath = flags.out ?? join(root, 'bench/swap/RESULTS.md');
// The import() side needs count × kb of heap that it can never free.
if (parts.has('2') && (heap.count * heap.kb) / 1024 > heap.maxOldSpaceMb * 0.75) {
  throw new Error(`--heap-swaps × --heap-kb (${((heap.count * heap.kb) / 1024).toFixed(0)} MB) must stay under 3/4 of --max-old-space (${heap.maxOldSpaceMb} MB): the import() side never frees a module`);
}

const startedAt = performance.now();
const loadAtStart = loadavg()[0]!.toFixed(1);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
}

// -------------------------------------------------------------------- report

const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : `${n.toFixed(0)} ms`);
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) || !b ? '-' : `${a / b < 0.01 ? (a / b).toFixed(4) : (a / b).toFixed(2)}×`);

interface Results {
  swap?: ChangeSeries;
  peers: ChangeSeries[];
  heap?: HeapPair;
  load?: LoadPhase;
}

function changeRows(r: Results, rows: string[]): void {
  const s = r.swap;
  if (!s) return;
  const p50 = percentile(s.samples, 0.5);
  const p99 = percentile(s.samples, 0.99);
  for (const peer of r.peers) {
    const label = peer.name;
    const n = peer.samples.length;
    rows.push(
      `| 1 | file change → new code serves in all ${workers} workers, **p50** | ${ms(p50)} | ${label}: ${peer.done} | ${ms(percentile(peer.samples, 0.5))} | **${ratio(p50, percentile(peer.samples, 0.5))}** |`,
      `| 1 | … **p99** (peers: max of ${n}) | ${ms(p99)} | ${label} | ${ms(percentile(peer.samples, 0.99))} | **${ratio(p99, percentile(peer.samples, 0.99))}** |`,
    );
    if (peer.alt) {
      rows.push(
        `| 1 | … p50 / p99 | ${ms(p50)} / ${ms(p99)} | ${label}: ${peer.alt.done} | ${ms(percentile(peer.alt.samples, 0.5))} / ${ms(percentile(peer.alt.samples, 0.99))} | ${ratio(p50, percentile(peer.alt.samples, 0.5))} / ${ratio(p99, percentile(peer.alt.samples, 0.99))} |`,
      );
    }
  }
  const all = [s, ...r.peers];
  const cell = (x: ChangeSeries) => `${x.samples.length} ok, ${x.failures.length} failed`;
  rows.push(`| 1 | changes measured | ${cell(s)} | ${r.peers.map((p) => p.name).join('; ') || '-'} | ${r.peers.map(cell).join('; ') || '-'} | |`);
  const pids = (x: ChangeSeries) => (Number.isFinite(x.minPids) ? `, ≥ ${x.minPids}/${workers} workers seen on it each time` : '');
  rows.push(
    `| 1 | fresh-connection GETs right after "done" answering with the old version | ${s.stale} of ${s.requests}${pids(s)} | ${r.peers.map((p) => p.name).join('; ') || '-'} | ${r.peers.map((p) => `${p.stale} of ${p.requests}${pids(p)}`).join('; ') || '-'} | |`,
  );
  rows.push(
    `| 1 | new worker processes / extra swaps or reloads beyond one per change | ${s.newProcesses ?? '-'} / ${s.extra ?? '-'} | ${all
      .slice(1)
      .map((p) => p.name)
      .join('; ')} | ${all
      .slice(1)
      .map((p) => (p.name.startsWith('PM2') ? `${workers} per change / -` : `${workers} per change / ${p.extra ?? '-'}`))
      .join('; ')} | |`,
  );
}

function heapRows(r: Results, rows: string[]): void {
  if (!r.heap) return;
  const { swappable: s, swappableTenth: t, imported: i } = r.heap;
  const gs = s.after - s.before;
  const gt = t.after - t.before;
  const gi = i.after - i.before;
  const peer = "cache-busting `import(url + '?v=' + i)`";
  rows.push(
    `| 2 | heap growth after GC, ${s.count} loads of a ${heap.kb} KB module, **total** | ${mb(gs)} | ${peer} | ${mb(gi)} | **${ratio(gs, gi)}** |`,
    `| 2 | … **per load** | ${((gs / s.count) / 1024).toFixed(2)} KB | ${peer} | ${((gi / i.count) / 1024).toFixed(0)} KB | ${ratio(gs, gi)} |`,
    `| 2 | graft's growth after ${t.count} swaps (a tenth): fixed cost or per swap? | ${mb(gt)} after ${t.count}, ${mb(gs)} after ${s.count} | | | |`,
    `| 2 | replaced generations collected by the GC | ${s.collected} of ${s.count} | ${peer} | ${i.collected} of ${i.count} | |`,
    `| 2 | time per load (build + evaluate) | ${s.msPerLoad.toFixed(2)} ms | ${peer} | ${i.msPerLoad.toFixed(2)} ms | ${ratio(s.msPerLoad, i.msPerLoad)} |`,
  );
}

function loadRows(r: Results, rows: string[]): void {
  const l = r.load;
  if (!l) return;
  const steadyRps = l.steady.window.count / l.steady.durationS;
  const duringRps = l.windowS > 0 ? l.during.window.count / l.windowS : NaN;
  const base = `steady, no swaps (${loadOptions.steadyS} s)`;
  rows.push(
    `| 3 | **failed requests** (errors + timeouts) during ${loadOptions.swaps} swaps under load | **${l.during.errors}** | ${base} | ${l.steady.errors} | |`,
    `| 3 | non-2xx responses | ${l.during.non2xx} | ${base} | ${l.steady.non2xx} | |`,
    `| 3 | requests left unanswered on a closed connection | ${l.during.unanswered} | ${base} | ${l.steady.unanswered} | |`,
    `| 3 | latency **p50** | ${l.during.window.p50.toFixed(2)} ms | ${base} | ${l.steady.window.p50.toFixed(2)} ms | ${ratio(l.during.window.p50, l.steady.window.p50)} |`,
    `| 3 | latency **p99** | ${l.during.window.p99.toFixed(2)} ms | ${base} | ${l.steady.window.p99.toFixed(2)} ms | **${ratio(l.during.window.p99, l.steady.window.p99)}** |`,
    `| 3 | max latency | ${l.during.window.max.toFixed(0)} ms | ${base} | ${l.steady.window.max.toFixed(0)} ms | |`,
    `| 3 | **req/s** (responses in the window ÷ its length) | ${duringRps.toFixed(0)} | ${base} | ${steadyRps.toFixed(0)} | **${ratio(duringRps, steadyRps)}** |`,
    `| 3 | capacity lost per swap: (steady − during req/s) × window ÷ swaps, in ms of steady serving | ${(((steadyRps - duringRps) * l.windowS) / loadOptions.swaps / steadyRps * 1000).toFixed(1)} ms | | | |`,
    `| 3 | \`graft swap\` order → answered, p50 / p99 (under load) | ${ms(percentile(l.swapMs, 0.5))} / ${ms(percentile(l.swapMs, 0.99))} | | | |`,
    `| 3 | swaps ok / new worker processes / stale GETs after the last swap | ${l.swapMs.length - l.failures.length} of ${loadOptions.swaps} / ${l.newProcesses} / ${l.final.stale} of ${l.final.requests} | | | |`,
  );
}

function report(r: Results): string {
  const rows: string[] = [
    '| part | measurement | graft | compared with | value | graft ÷ compared |',
    '|---|---|---|---|---|---|',
  ];
  changeRows(r, rows);
  heapRows(r, rows);
  loadRows(r, rows);
  const lines = [rows.join('\n'), ''];
  const failures = [...(r.swap ? [r.swap] : []), ...r.peers].flatMap((s) => s.failures.slice(0, 5).map((f) => `- ${s.name}: ${f}`));
  if (r.load) failures.push(...r.load.failures.slice(0, 5).map((f) => `- under load: ${f}`));
  if (failures.length) lines.push('Failures:', '', ...failures, '');
  const stale = [...(r.swap ? [r.swap] : []), ...r.peers].filter((s) => s.firstStale).map((s) => `- ${s.name}: first stale answer ${s.firstStale}`);
  if (stale.length) {
    lines.push('Stale answers (a GET on a new connection, sent after "done", answered by a process or generation running the old code):', '', ...stale, '');
    if (r.peers.some((p) => p.name.startsWith('graft --watch') && p.stale > 0)) {
      lines.push(
        'graft worker reload: the master logs "reload: generation committed" (and `graft reload` answers) before the old workers have stopped accepting; ' +
          'node:cluster keeps handing them new connections until their drain order, sent over IPC at commit, has closed their listeners, a few ms later.',
        '',
      );
    }
  }
  if (r.load?.masterWarnings.length) lines.push('Warnings and errors graft logged during part 3:', '', '```', ...r.load.masterWarnings.slice(0, 10), '```', '');
  return lines.join('\n');
}

function setup(r: Results): string {
  const lines = ['### Setup', ''];
  if (r.swap) {
    lines.push(
      `- part 1: a temp project, \`handler.ts\` (default-exports a node:http handler answering \`<version> <pid>\`) importing \`./version.ts\`; a change rewrites version.ts. ` +
        `graft: \`node --import tsx src/cli/main.ts start <tmp>/handler.ts --swap --watch -w ${workers} -p <port> --socket <tmp>/ctl.sock\` (GRAFT_LOG_FORMAT=json, cwd <tmp>); ` +
        `"done" = the master's \`swap applied in every worker\` line arriving on its stderr; ${change.changes} changes after ${change.warmup} warm-up, ${change.gapMs} ms apart. ` +
        `The watcher waits for 250 ms of quiet after a write before it orders the swap (src/supervisor/code-watcher.ts), so ~250 ms of each sample is that debounce.`,
    );
  }
  for (const p of r.peers) {
    if (p.name.startsWith('PM2')) {
      lines.push(
        `- PM2 ${packageVersion('node_modules/pm2/package.json')}: \`pm2 start <tmp>/server.ts --interpreter node --node-args "--import tsx" -i ${workers} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` ` +
          '(server.ts serves the same handler; PM2 would run .ts with bun otherwise) in an isolated PM2_HOME, `pm2 kill` at the end; per change: write version.ts, then `pm2 reload`. ' +
          `"done" = the ${workers}th new process listening with the new version (each process appends its listen time to a file), the earliest moment PM2 serves the new code everywhere; ` +
          `the time until \`pm2 reload\` returned is shown too. ${peerChanges} changes after ${change.warmup} warm-up.`,
      );
    } else {
      lines.push(
        `- graft worker reload: \`graft start <tmp>/server.ts --watch -w ${workers}\` (no --swap, same handler served by server.ts); "done" = the master's \`reload: generation committed\` line; ` +
          `the next change waits until the old generation retired. ${peerChanges} changes after ${change.warmup} warm-up.`,
      );
    }
  }
  lines.push(
    '- "fresh-connection GETs": after each "done", 2 × workers GETs each on a new connection (so node:cluster spreads them over the workers) must answer the new version.',
  );
  if (r.heap) {
    lines.push(
      `- part 2: one fresh child per side, each \`node ${heapChildArgs(heap).join(' ')} <side> ${heap.count} <tmp>/data.mjs\`; ` +
        `data.mjs evaluates \`new Array(${(heap.kb * 1024) / 8})\` filled with doubles (${heap.kb} KB of heap per evaluation). ` +
        `graft side: \`swappable(file)\` then ${heap.count} × \`await handle.swap()\`, measured once graft's leak watch has settled every retired generation; ` +
        `peer: \`await import(url + '?v=' + i)\` ${heap.count} times. Heap = \`process.memoryUsage().heapUsed\` after repeated \`gc()\`, before (first generation loaded) and after (last loaded). ` +
        `"collected" counts replaced generations whose data array a FinalizationRegistry saw freed. --max-old-space-size=${heap.maxOldSpaceMb} bounds the import() side, which keeps ${((heap.count * heap.kb) / 1024).toFixed(0)} MB for good.`,
    );
  }
  if (r.load) {
    lines.push(
      `- part 3: \`graft start <tmp>/handler.ts --swap -w ${workers}\`; autocannon ${loadOptions.connections} connections, keep-alive, pipelining 1, 10 s request timeout, in this process; ` +
        `${loadOptions.warmupS} s warm-up, ${loadOptions.steadyS} s steady, then ${loadOptions.swaps} swaps ${loadOptions.gapMs ? `${loadOptions.gapMs} ms apart` : 'back to back'} ` +
        '(write version.ts, `sendControl(socket, { cmd: "swap" })`, wait for the answer that every worker runs the new generation). ' +
        'Latency percentiles over every response in the window (steady: the whole steady run; during: first swap order to last answer); req/s = those responses ÷ window length.',
    );
  }
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------------- main

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  const direct = `node --import tsx bench/swap/run.ts${args ? ' ' + args : ''}`;
  return process.env.npm_lifecycle_event === 'bench:swap' ? `npm run bench:swap${args ? ' -- ' + args : ''}   (= ${direct})` : direct;
}

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

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, path), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  log(`config: ${JSON.stringify({ change, peerChanges, peers, heap, load: loadOptions, parts: [...parts] })}`);
  const results: Results = { peers: [] };
  if (parts.has('1')) {
    results.swap = await swapSeries(change);
    log(`graft --swap --watch: p50 ${percentile(results.swap.samples, 0.5).toFixed(0)} ms, p99 ${percentile(results.swap.samples, 0.99).toFixed(0)} ms over ${results.swap.samples.length}`);
    const peerOptions = { ...change, changes: peerChanges };
    if (peers.includes('pm2')) results.peers.push(await pm2Series(peerOptions));
    if (peers.includes('graft-reload')) results.peers.push(await graftReloadSeries(peerOptions));
  }
  if (parts.has('2')) results.heap = await heapPair(heap);
  if (parts.has('3')) results.load = await loadDuringSwaps(loadOptions);

  const cpu = cpus();
  const header = [
    '# bench/swap results',
    '',
    `- command: \`${commandLine()}\``,
    `- date: ${new Date().toISOString()}`,
    `- graft: ${graftRevision()}; node ${process.version}, ${process.platform}/${process.arch}; PM2 ${packageVersion('node_modules/pm2/package.json')}; ` +
      `autocannon ${packageVersion('node_modules/autocannon/package.json')}; esbuild ${packageVersion('node_modules/esbuild/package.json')}`,
    `- machine: a shared ${cpu.length}-core box (${cpu[0]?.model.trim() ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GB, with other work running; ` +
      'the load generator runs in the benchmark process on the same cores as the servers, so absolute times and req/s are noise: read ratios and counts.',
    `- total run time: ${((performance.now() - startedAt) / 1000).toFixed(0)} s; 1-minute load average ${loadAtStart} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
    '',
  ].join('\n');
  const full = `${header}\n${report(results)}\n${setup(results)}`;
  console.log(full);
  if (!flags['no-results']) {
    writeFileSync(resultsPath, full);
    log(`results written to ${relative(process.cwd(), resultsPath)}`);
  }
}

try {
  await main();
} catch (err) {
  log(`failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
