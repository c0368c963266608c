/**
 * Part 2: heap growth per swap. One fresh child per side (same flags:
 * --expose-gc --max-old-space-size=4096), each loading the same data module
 * `count` more times; see heap-child.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../lib/cleanup.js';
import { log } from '../lib/log.js';
import { runJson } from '../lib/proc.js';
import type { HeapResult } from './heap-child.js';

export interface HeapOptions {
  count: number;
  /** Heap data the module holds, KB (an array of kb*128 doubles). */
  kb: number;
  /** V8 old-space limit for both children, MB. */
  maxOldSpaceMb: number;
}

export const heapChildArgs = (o: HeapOptions) => ['--expose-gc', `--max-old-space-size=${o.maxOldSpaceMb}`, '--import', 'tsx', 'bench/swap/heap-child.ts'];

export interface HeapPair {
  swappable: HeapResult;
  /** The same with a tenth of the swaps: growth that does not scale with the count is fixed cost, not per swap. */
  swappableTenth: HeapResult;
  imported: HeapResult;
}

export async function heapPair(o: HeapOptions): Promise<HeapPair> {
  const dir = tempDir('bench-swap-heap-');
  const file = join(dir, 'data.mjs');
  const length = (o.kb * 1024) / 8;
  // A new array per evaluation: every generation holds its own kb of doubles (8 bytes each, unboxed).
  writeFileSync(
    file,
    `const length = ${length};
export const data = new Array(length);
for (let i = 0; i < length; i++) data[i] = i + 0.5;
`,
  );
  const run = async (mode: 'swappable' | 'import', count = o.count): Promise<HeapResult> => {
    log(`heap: ${count} loads of a ${o.kb} KB module by ${mode === 'swappable' ? 'swappable().swap()' : "import(url + '?v=' + i)"}`);
    const { value: result, run: r } = await runJson<HeapResult>([...heapChildArgs(o), mode, String(count), file], {
      env: { ...process.env, GRAFT_LOG_LEVEL: 'warn' },
      timeoutMs: 600_000,
    });
    log(
      `heap ${mode}: ${((result.after - result.before) / 2 ** 20).toFixed(1)} MB growth after GC, ${result.collected}/${result.count} replaced generations collected, ` +
        `${result.msPerLoad.toFixed(2)} ms per load${result.leaks ? `, ${result.leaks} leak reports` : ''}`,
    );
    if (r.stderr.trim()) log(`heap ${mode} child stderr:\n${r.stderr.trim().slice(-2000)}`);
    return result;
  };
  const swappableTenth = await run('swappable', Math.max(1, Math.round(o.count / 10)));
  const swappable = await run('swappable');
  const imported = await run('import');
  return { swappable, swappableTenth, imported };
}
