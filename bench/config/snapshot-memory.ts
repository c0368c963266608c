/**
 * Part 5 of bench/config, run as its own process with --expose-gc: heap kept
 * alive per retained config snapshot.
 *
 *   node --expose-gc --import tsx bench/config/snapshot-memory.ts
 *
 * A ConfigStore installs N distinct versions of the ~2 KB config (as a worker
 * does on each change) and we keep a reference to every store.snapshotInfo.
 * Heap growth after full GCs, divided by N, is the cost of one retained
 * snapshot (data, changed key paths, metadata). The same N values kept as
 * plain JSON.parse() objects are the baseline. Trials alternate; the parent
 * takes medians. Prints one JSON line.
 */
import { ConfigStore, type Snapshot } from '../lib/graft.js';
import { realisticConfig } from './fixture.js';

const count = Number(process.env.BENCH_SNAPSHOTS ?? 1000);
const trials = Number(process.env.BENCH_MEMORY_TRIALS ?? 3);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function settledHeap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

/** JSON text of each version, made before the measurement so it is not counted. */
const texts = Array.from({ length: count }, (_, i) => JSON.stringify(realisticConfig(i + 1)));
const jsonBytes = texts.map((t) => Buffer.byteLength(t));

async function retainSnapshots(): Promise<{ perItem: number; kept: Array<Snapshot<unknown>> }> {
  const store = new ConfigStore<unknown>();
  const kept: Array<Snapshot<unknown>> = [];
  const before = settledHeap();
  for (let i = 0; i < count; i++) {
    // A worker gets the JSON over IPC, parses it, then the store validates, clones and freezes.
    const value = JSON.parse(texts[i]!) as Record<string, unknown>;
    await store.apply({ version: i + 1, source: 'bench', read: () => value });
    kept.push(store.snapshotInfo);
  }
  const after = settledHeap();
  if (new Set(kept.map((s) => s.version)).size !== count) throw new Error('expected distinct snapshot versions');
  return { perItem: (after - before) / count, kept };
}

function retainParsed(): { perItem: number; kept: unknown[] } {
  const kept: unknown[] = [];
  const before = settledHeap();
  for (let i = 0; i < count; i++) kept.push(JSON.parse(texts[i]!));
  const after = settledHeap();
  return { perItem: (after - before) / count, kept };
}

const snapshotBytes: number[] = [];
const parsedBytes: number[] = [];
let changedPerSnapshot = 0;
for (let t = 0; t < trials; t++) {
  const s = await retainSnapshots();
  snapshotBytes.push(s.perItem);
  changedPerSnapshot = s.kept.slice(1).reduce((n, snap) => n + snap.changed.length, 0) / Math.max(1, count - 1);
  s.kept.length = 0;
  const p = retainParsed();
  parsedBytes.push(p.perItem);
  p.kept.length = 0;
}

const meanJson = jsonBytes.reduce((a, b) => a + b, 0) / count;
process.stdout.write(JSON.stringify({ count, trials, jsonBytes: meanJson, snapshotBytes, parsedBytes, changedPerSnapshot }) + '\n');
