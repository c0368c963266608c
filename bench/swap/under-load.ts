/**
 * Part 3: keep-alive load (autocannon, pipelining 1) against graft --swap,
 * a steady phase without swaps, then the same load while `swaps` swaps are
 * done back to back through the control socket (the in-process equivalent of
 * `graft swap`), each after a change to version.ts. Failed requests, non-2xx,
 * latency and req/s, steady against during the swaps.
 */
import { performance } from 'node:perf_hooks';
import { onCleanup } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import type { SwapOutcome } from '../lib/graft.js';
import { loadDuring, measureLoad, stopAllLoads, type LoadSummary } from '../lib/load.js';
import { log } from '../lib/log.js';
import { sleep, withTimeout } from '../lib/wait.js';
import { confirmVersion, makeProject, type Confirmation } from './project.js';

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

export async function loadDuringSwaps(o: LoadOptions): Promise<LoadPhase> {
  const project = makeProject('bench-swap-load-');
  const g = await Graft.start({ entry: project.handler, workers: o.workers, args: ['--swap'], cwd: project.dir });
  onCleanup(stopAllLoads);
  const url = g.url;
  try {
    const workersAtStart = g.workersStarted;
    const first = await confirmVersion(url, 'v0', 2 * o.workers);
    if (first.stale > 0) throw new Error(`graft --swap does not serve v0: ${first.firstStale}`);
    log(`load: steady phase, ${o.steadyS} s, ${o.connections} connections`);
    const steady = await measureLoad({ url, connections: o.connections, durationS: o.steadyS, timeoutS: o.timeoutS, warmupS: o.warmupS });
    log(`load steady: ${Math.round(steady.rps)} req/s, p50 ${steady.window.p50.toFixed(2)} ms, p99 ${steady.window.p99.toFixed(2)} ms, errors ${steady.errors}, non-2xx ${steady.non2xx}`);

    // Bounded: long enough for every swap even if each takes 2 s; stopped as soon as they are done.
    const cap = Math.ceil(o.swaps * (2 + o.gapMs / 1000) + 30);
    const swapMs: number[] = [];
    const failures: string[] = [];
    const swaps = async () => {
      for (let i = 1; i <= o.swaps; i++) {
        project.writeVersion(`l${i}`);
        const s0 = performance.now();
        try {
          const outcome = (await withTimeout(g.control({ cmd: 'swap' }), 30_000, `swap ${i}`)) as SwapOutcome;
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
    };
    const { windowS, summary: during } = await loadDuring(
      { url, connections: o.connections, durationS: cap, timeoutS: o.timeoutS, settleMs: 1000, tailMs: 500 },
      swaps,
    );
    log(
      `load during ${o.swaps} swaps (${windowS.toFixed(1)} s): errors ${during.errors}, non-2xx ${during.non2xx}, unanswered ${during.unanswered}, ` +
        `p50 ${during.window.p50.toFixed(2)} ms, p99 ${during.window.p99.toFixed(2)} ms`,
    );
    const final = await confirmVersion(url, `l${o.swaps}`, 2 * o.workers);
    const masterWarnings = g.lines.filter((l) => l.record && (l.record.level === 'warn' || l.record.level === 'error')).map((l) => l.text.slice(0, 400));
    return { steady, during, windowS, swapMs, failures, newProcesses: g.workersStarted - workersAtStart, final, masterWarnings };
  } finally {
    stopAllLoads();
    await g.stop();
  }
}
