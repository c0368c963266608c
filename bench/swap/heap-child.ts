/**
 * Part 2, in a child started with --expose-gc (one child per side, same flags):
 * load a module that holds `kb` KB of heap data, then load it again `count`
 * times, either as graft swappable generations (`handle.swap()`) or by
 * cache-busting `import(url + '?v=' + i)`. Prints one JSON line: heap used
 * after a full GC before and after, and how many of the replaced generations'
 * data arrays the GC collected (FinalizationRegistry).
 *
 *   node --expose-gc --max-old-space-size=4096 --import tsx bench/swap/heap-child.ts swappable|import COUNT FILE
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface HeapResult {
  mode: 'swappable' | 'import';
  count: number;
  /** heapUsed after GC with the first generation loaded, bytes. */
  before: number;
  /** heapUsed after GC with the last generation loaded, bytes. */
  after: number;
  /** Data arrays of replaced generations the GC collected (of `count`). */
  collected: number;
  /** Retired generations graft reported as leaked (swappable only). */
  leaks: number;
  /** Retired generations the leak watch still had pending when measured (swappable only). */
  pending: number;
  msPerLoad: number;
  rssAfter: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const [mode, countArg, file] = process.argv.slice(2);
if ((mode !== 'swappable' && mode !== 'import') || !countArg || !file) throw new Error('usage: heap-child.ts swappable|import COUNT FILE');
const count = Number(countArg);

let collected = 0;
const finalized = new FinalizationRegistry<number>((generation) => {
  if (generation < count) collected++;
});

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 5));

/** Full GCs until heapUsed stops falling, letting finalizers run in between. */
async function settledHeap(): Promise<number> {
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    gc!();
    await tick();
    const used = process.memoryUsage().heapUsed;
    if (used >= last - 64 * 1024 && i >= 2) return Math.min(used, last);
    last = Math.min(last, used);
  }
  return last;
}

type DataModule = { data: number[] };
let before = 0;
let after = 0;
let leaks = 0;
let pending = 0;
let ms = 0;

if (mode === 'swappable') {
  // Only this side loads graft.
  const { swappable, pendingRetired } = await import('../lib/graft.js');
  const handle = swappable<DataModule>(file, undefined, { onLeak: () => leaks++ });
  await handle.ready;
  finalized.register(handle.current.data, 0);
  before = await settledHeap();
  const t0 = performance.now();
  for (let i = 1; i <= count; i++) {
    await handle.swap();
    finalized.register(handle.current.data, i);
  }
  ms = performance.now() - t0;
  // Let the leak watch finish with every retired generation (collected, or reported after its grace period), bounded.
  const deadline = performance.now() + 60_000;
  while (pendingRetired() > 0 && performance.now() < deadline) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  pending = pendingRetired();
  after = await settledHeap();
  await handle.close();
} else {
  const url = pathToFileURL(file).href;
  finalized.register(((await import(`${url}?v=0`)) as DataModule).data, 0);
  before = await settledHeap();
  const t0 = performance.now();
  for (let i = 1; i <= count; i++) finalized.register(((await import(`${url}?v=${i}`)) as DataModule).data, i);
  ms = performance.now() - t0;
  after = await settledHeap();
}

const result: HeapResult = { mode, count, before, after, collected, leaks, pending, msPerLoad: ms / count, rssAfter: process.memoryUsage.rss() };
process.stdout.write(JSON.stringify(result) + '\n');
