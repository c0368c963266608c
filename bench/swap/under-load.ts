/**
 * Part 3: keep-alive load (autocannon, pipelining 1) against graft --swap,
 * a steady phase without swaps, then the same load while `swaps` swaps are
 * done back to back through the control socket (the in-process equivalent of
 * `graft swap`), each after a change to version.ts. Failed requests, non-2xx,
 * latency and req/s, steady against during the swaps.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sendControl } from '../../src/supervisor/control-client.js';
import type { SwapOutcome } from '../../src/supervisor/code-swapper.js';
import { startLoad, type LoadRun, type LoadSummary } from '../reload/load.js';
import { confirmVersion, freePort, log, makeProject, onCleanup, sleep, startGraft, type Confirmation } from './common.js';

export interface LoadOptions {
  workers: number;
  connections: number;
  swaps: number;
  /** Pause after each swap answered, before the next change. */
  gapMs: number;
  steadyS: number;
  warmupS: number;
  timeoutS: number;
}

export interface LoadPhase {
  steady: LoadSummary;
  during: LoadSummary;
  /** Seconds from the first swap order to the last swap answered. */
  windowS: number;
  /** ms from each swap order to its answer. */
  swapMs: number[];
  failures: string[];
  /** Worker processes started after the first generation. */
  newProcesses: number;
  final: Confirmation;
  /** The master's warnings and errors during the run. */
  masterWarnings: string[];
}

const liveLoads = new Set<LoadRun>();
onCleanup(() => {
  for (const l of liveLoads) l.stop();
});

function load(o: LoadOptions, url: string, durationS: number, record: boolean): LoadRun {
  const run = startLoad({ url, connections: o.connections, durationS, timeoutS: o.timeoutS, recordLatencies: record });
  liveLoads.add(run);
  void run.result.finally(() => liveLoads.delete(run)).catch(() => {});
  return run;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]);
}

export async function loadDuringSwaps(o: LoadOptions): Promise<LoadPhase> {
  const project = makeProject('bench-swap-load-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const socket = join(project.dir, 'ctl.sock');
  const g = await startGraft([project.handler, '--swap', '-w', String(o.workers), '-p', String(port), '--socket', socket], project.dir);
  try {
    const workersAtStart = g.workerPids.size;
    const first = await confirmVersion(url, 'v0', 2 * o.workers);
    if (first.stale > 0) throw new Error(`graft --swap does not serve v0: ${first.firstStale}`);
    if (o.warmupS > 0) await load(o, url, o.warmupS, false).result;
    log(`load: steady phase, ${o.steadyS} s, ${o.connections} connections`);
    const steady = await load(o, url, o.steadyS, true).result;
    log(`load steady: ${Math.round(steady.rps)} req/s, p50 ${steady.window.p50.toFixed(2)} ms, p99 ${steady.window.p99.toFixed(2)} ms, errors ${steady.errors}, non-2xx ${steady.non2xx}`);

    // Bounded: long enough for every swap even if each takes 2 s; stopped as soon as they are done.
    const cap = Math.ceil(o.swaps * (2 + o.gapMs / 1000) + 30);
    const run = load(o, url, cap, false);
    const swapMs: number[] = [];
    const failures: string[] = [];
    let windowS = 0;
    try {
      await sleep(1000); // the load is in full swing before the first swap
      run.record(true);
      const t0 = performance.now();
      for (let i = 1; i <= o.swaps; i++) {
        project.writeVersion(`l${i}`);
        const s0 = performance.now();
        try {
          const outcome = (await withTimeout(sendControl(socket, { cmd: 'swap' }), 30_000, `swap ${i}`)) as SwapOutcome;
          swapMs.push(performance.now() - s0);
          const gens = new Set(outcome.workers.flatMap((w) => w.modules.filter((m) => !m.unchanged).map((m) => m.generation)));
          if (outcome.mode !== 'swap' || outcome.workers.length !== o.workers || gens.size !== 1) {
            failures.push(`swap ${i}: mode ${outcome.mode}, ${outcome.workers.length} workers, generations ${[...gens].join(',')}`);
          }
        } catch (err) {
          failures.push(`swap ${i}: ${(err as Error).message}`);
        }
        if (i % 10 === 0) log(`load: swap ${i}/${o.swaps}, last ${swapMs.at(-1)?.toFixed(0) ?? '-'} ms`);
        if (o.gapMs > 0) await sleep(o.gapMs);
      }
      windowS = (performance.now() - t0) / 1000;
      run.record(false);
      await sleep(500);
    } finally {
      run.stop();
    }
    const during = await run.result;
    log(
      `load during ${o.swaps} swaps (${windowS.toFixed(1)} s): errors ${during.errors}, non-2xx ${during.non2xx}, unanswered ${during.unanswered}, ` +
        `p50 ${during.window.p50.toFixed(2)} ms, p99 ${during.window.p99.toFixed(2)} ms`,
    );
    const final = await confirmVersion(url, `l${o.swaps}`, 2 * o.workers);
    const masterWarnings = g.lines.filter((l) => l.record && (l.record.level === 'warn' || l.record.level === 'error')).map((l) => l.text.slice(0, 400));
    return { steady, during, windowS, swapMs, failures, newProcesses: g.workerPids.size - workersAtStart, final, masterWarnings };
  } finally {
    for (const l of liveLoads) l.stop();
    await g.stop();
  }
}
