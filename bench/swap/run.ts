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
import { runMain } from '../lib/cleanup.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { host, markdownTable, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { percentile, ratio } from '../lib/stats.js';
import { graftReloadSeries, pm2Series, swapSeries, type ChangeOptions, type ChangeSeries } from './change-latency.js';
import { heapChildArgs, heapPair, type HeapOptions, type HeapPair } from './heap.js';
import { loadDuringSwaps, type LoadOptions, type LoadPhase } from './under-load.js';

// ---------------------------------------------------------------- configuration

const { values, resultsPath } = parseOptions('swap', {
  workers: { default: 4, min: 1, help: 'workers in every setup' },
  changes: { default: 100, quick: 10, min: 1, help: 'file changes measured for graft --swap --watch' },
  'peer-changes': { default: 10, quick: 2, min: 1, help: 'file changes measured for each process-level peer' },
  warmup: { default: 3, quick: 1, min: 0, help: 'changes made first and not measured, per series' },
  gap: { default: 300, min: 0, unit: 'MS', help: 'pause after a change is confirmed' },
  peers: { type: 'string', default: 'pm2,graft-reload', help: 'process-level peers: pm2,graft-reload' },
  'heap-swaps': { default: 1000, quick: 100, min: 1, help: 'loads after the first, per side, in part 2' },
  'heap-kb': { default: 1024, min: 1, unit: 'KB', help: 'heap data the module holds, both sides' },
  'max-old-space': { default: 4096, min: 256, unit: 'MB', help: 'V8 old-space limit of both heap children' },
  'load-swaps': { default: 100, quick: 10, min: 1, help: 'swaps under load in part 3' },
  'swap-gap': { default: 0, min: 0, unit: 'MS', help: 'pause after each swap under load (0: back to back)' },
  connections: { default: 64, min: 1, help: 'autocannon connections, pipelining 1' },
  steady: { default: 10, quick: 3, min: 1, unit: 'S', help: 'steady phase without swaps' },
  parts: { type: 'string', default: '1,2,3', help: 'which parts to run: 1,2,3' },
});

const workers = values.workers;
const change: ChangeOptions = {
  workers,
  changes: values.changes,
  warmup: values.warmup,
  gapMs: values.gap,
  timeoutMs: 60_000,
};
const peerChanges = values['peer-changes'];
const peers = values.peers.split(',').filter(Boolean);
for (const p of peers) if (p !== 'pm2' && p !== 'graft-reload') throw new Error(`--peers: unknown peer ${p} (pm2, graft-reload)`);
const heap: HeapOptions = {
  count: values['heap-swaps'],
  kb: values['heap-kb'],
  maxOldSpaceMb: values['max-old-space'],
};
const loadOptions: LoadOptions = {
  workers,
  connections: values.connections,
  swaps: values['load-swaps'],
  gapMs: values['swap-gap'],
  steadyS: values.steady,
  warmupS: 2,
  timeoutS: 10,
};
const parts = new Set(values.parts.split(',').map((p) => p.trim()));
// The import() side needs count × kb of heap that it can never free.
if (parts.has('2') && (heap.count * heap.kb) / 1024 > heap.maxOldSpaceMb * 0.75) {
  throw new Error(`--heap-swaps × --heap-kb (${((heap.count * heap.kb) / 1024).toFixed(0)} MB) must stay under 3/4 of --max-old-space (${heap.maxOldSpaceMb} MB): the import() side never frees a module`);
}

// -------------------------------------------------------------------- report

const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : `${n.toFixed(0)} ms`);
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const x = (a: number | undefined, b: number | undefined) => times(ratio(a, b), { small: 0.01, smallDigits: 4 });

interface Results {
  swap?: ChangeSeries;
  peers: ChangeSeries[];
  heap?: HeapPair;
  load?: LoadPhase;
}

type Row = string[];

function changeRows(r: Results): Row[] {
  const s = r.swap;
  if (!s) return [];
  const rows: Row[] = [];
  const p50 = percentile(s.samples, 0.5);
  const p99 = percentile(s.samples, 0.99);
  for (const peer of r.peers) {
    const label = peer.name;
    const n = peer.samples.length;
    const peer50 = percentile(peer.samples, 0.5);
    const peer99 = percentile(peer.samples, 0.99);
    rows.push(
      ['1', `file change → new code serves in all ${workers} workers, **p50**`, ms(p50), `${label}: ${peer.done}`, ms(peer50), `**${x(p50, peer50)}**`],
      ['1', `… **p99** (peers: max of ${n})`, ms(p99), label, ms(peer99), `**${x(p99, peer99)}**`],
    );
    if (peer.alt) {
      const alt50 = percentile(peer.alt.samples, 0.5);
      const alt99 = percentile(peer.alt.samples, 0.99);
      rows.push(['1', '… p50 / p99', `${ms(p50)} / ${ms(p99)}`, `${label}: ${peer.alt.done}`, `${ms(alt50)} / ${ms(alt99)}`, `${x(p50, alt50)} / ${x(p99, alt99)}`]);
    }
  }
  const names = r.peers.map((p) => p.name).join('; ') || '-';
  const perPeer = (f: (p: ChangeSeries) => string) => r.peers.map(f).join('; ') || '-';
  const pids = (c: ChangeSeries) => (Number.isFinite(c.minPids) ? `, ≥ ${c.minPids}/${workers} workers seen on it each time` : '');
  rows.push(
    ['1', 'changes measured', `${s.samples.length} ok, ${s.failures.length} failed`, names, perPeer((p) => `${p.samples.length} ok, ${p.failures.length} failed`), ''],
    ['1', 'fresh-connection GETs right after "done" answering with the old version', `${s.stale} of ${s.requests}${pids(s)}`, names, perPeer((p) => `${p.stale} of ${p.requests}${pids(p)}`), ''],
    [
      '1',
      'new worker processes / extra swaps or reloads beyond one per change',
      `${s.newProcesses ?? '-'} / ${s.extra ?? '-'}`,
      r.peers.map((p) => p.name).join('; '),
      r.peers.map((p) => (p.name.startsWith('PM2') ? `${workers} per change / -` : `${workers} per change / ${p.extra ?? '-'}`)).join('; '),
      '',
    ],
  );
  return rows;
}

function heapRows(r: Results): Row[] {
  if (!r.heap) return [];
  const { swappable: s, swappableTenth: t, imported: i } = r.heap;
  const gs = s.after - s.before;
  const gt = t.after - t.before;
  const gi = i.after - i.before;
  const peer = "cache-busting `import(url + '?v=' + i)`";
  return [
    ['2', `heap growth after GC, ${s.count} loads of a ${heap.kb} KB module, **total**`, mb(gs), peer, mb(gi), `**${x(gs, gi)}**`],
    ['2', '… **per load**', `${(gs / s.count / 1024).toFixed(2)} KB`, peer, `${(gi / i.count / 1024).toFixed(0)} KB`, x(gs, gi)],
    ['2', `graft's growth after ${t.count} swaps (a tenth): fixed cost or per swap?`, `${mb(gt)} after ${t.count}, ${mb(gs)} after ${s.count}`, '', '', ''],
    ['2', 'replaced generations collected by the GC', `${s.collected} of ${s.count}`, peer, `${i.collected} of ${i.count}`, ''],
    ['2', 'time per load (build + evaluate)', `${s.msPerLoad.toFixed(2)} ms`, peer, `${i.msPerLoad.toFixed(2)} ms`, x(s.msPerLoad, i.msPerLoad)],
  ];
}

function loadRows(r: Results): Row[] {
  const l = r.load;
  if (!l) return [];
  const steadyRps = l.steady.window.count / l.steady.durationS;
  const duringRps = l.windowS > 0 ? l.during.window.count / l.windowS : NaN;
  const base = `steady, no swaps (${loadOptions.steadyS} s)`;
  const { during, steady } = l;
  return [
    ['3', `**failed requests** (errors + timeouts) during ${loadOptions.swaps} swaps under load`, `**${during.errors}**`, base, String(steady.errors), ''],
    ['3', 'non-2xx responses', String(during.non2xx), base, String(steady.non2xx), ''],
    ['3', 'requests left unanswered on a closed connection', String(during.unanswered), base, String(steady.unanswered), ''],
    ['3', 'latency **p50**', `${during.window.p50.toFixed(2)} ms`, base, `${steady.window.p50.toFixed(2)} ms`, x(during.window.p50, steady.window.p50)],
    ['3', 'latency **p99**', `${during.window.p99.toFixed(2)} ms`, base, `${steady.window.p99.toFixed(2)} ms`, `**${x(during.window.p99, steady.window.p99)}**`],
    ['3', 'max latency', `${during.window.max.toFixed(0)} ms`, base, `${steady.window.max.toFixed(0)} ms`, ''],
    ['3', '**req/s** (responses in the window ÷ its length)', duringRps.toFixed(0), base, steadyRps.toFixed(0), `**${x(duringRps, steadyRps)}**`],
    [
      '3',
      'capacity lost per swap: (steady − during req/s) × window ÷ swaps, in ms of steady serving',
      `${((((steadyRps - duringRps) * l.windowS) / loadOptions.swaps / steadyRps) * 1000).toFixed(1)} ms`,
      '',
      '',
      '',
    ],
    ['3', '`graft swap` order → answered, p50 / p99 (under load)', `${ms(percentile(l.swapMs, 0.5))} / ${ms(percentile(l.swapMs, 0.99))}`, '', '', ''],
    [
      '3',
      'swaps ok / new worker processes / stale GETs after the last swap',
      `${l.swapMs.length - l.failures.length} of ${loadOptions.swaps} / ${l.newProcesses} / ${l.final.stale} of ${l.final.requests}`,
      '',
      '',
      '',
    ],
  ];
}

function report(r: Results): string {
  const table = markdownTable(['part', 'measurement', 'graft', 'compared with', 'value', 'graft ÷ compared'], [...changeRows(r), ...heapRows(r), ...loadRows(r)]);
  const lines = [table, ''];
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
        `The watcher waits for 250 ms of quiet after a write before it orders the swap (src/master/code-watcher.ts), so ~250 ms of each sample is that debounce.`,
    );
  }
  for (const p of r.peers) {
    if (p.name.startsWith('PM2')) {
      lines.push(
        `- PM2 ${packageVersion('pm2')}: \`pm2 start <tmp>/server.ts --interpreter node --node-args "--import tsx" -i ${workers} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` ` +
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

  const machine = host();
  const header = resultsHead('swap', [`PM2 ${packageVersion('pm2')}`, `autocannon ${packageVersion('autocannon')}`, `esbuild ${packageVersion('esbuild')}`], [
    `machine: a shared ${machine.cores}-core box (${machine.model}), ${machine.memoryGb} GB, with other work running; ` +
      'the load generator runs in the benchmark process on the same cores as the servers, so absolute times and req/s are noise: read ratios and counts.',
  ]);
  const full = `${header}\n${report(results)}\n${setup(results)}`;
  console.log(full);
  writeResults(resultsPath, full);
}

await runMain(main);
