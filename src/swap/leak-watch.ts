import v8 from 'node:v8';
import vm from 'node:vm';
import type { TimerLedger } from './timer-ledger.js';

/**
 * After a generation is disposed it must become garbage. Each retired
 * generation is watched through a WeakRef to its sentinel; if it is still
 * reachable after a full GC once the grace period is over, something it
 * created outlives it (a timer, a listener on a global emitter) and a warning
 * names the module, so the leak is found where it starts.
 */
export interface LeakReport {
  module: string;
  generation: number;
  /** Timers the generation created and never cleared, with where they were created. */
  timers: string[];
}

interface Watched {
  ref: WeakRef<object>;
  module: string;
  generation: number;
  timers: TimerLedger;
  mapFrame: (frame: string) => string;
  deadline: number;
  report: (r: LeakReport) => void;
}

let gcFunction: (() => void) | undefined;

/** A full GC, exposing V8's gc() at run time when the process was not started with --expose-gc. */
export function fullGc(): void {
  if (!gcFunction) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFunction = exposed;
    else {
      v8.setFlagsFromString('--expose-gc');
      gcFunction = vm.runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

const watched = new Set<Watched>();
let timer: NodeJS.Timeout | undefined;
const CHECK_EVERY_MS = 500;

export function watchRetired(
  sentinel: object,
  info: { module: string; generation: number; timers: TimerLedger; mapFrame: (f: string) => string; graceMs: number; report: (r: LeakReport) => void },
): void {
  watched.add({ ref: new WeakRef(sentinel), module: info.module, generation: info.generation, timers: info.timers, mapFrame: info.mapFrame, deadline: Date.now() + info.graceMs, report: info.report });
  schedule();
}

/** Generations disposed but not yet collected or reported (for tests and status). */
export function pendingRetired(): number {
  return watched.size;
}

function schedule(): void {
  if (timer || watched.size === 0) return;
  timer = setTimeout(check, CHECK_EVERY_MS);
  timer.unref();
}

function check(): void {
  timer = undefined;
  fullGc();
  const now = Date.now();
  for (const w of watched) {
    if (w.ref.deref() === undefined) {
      watched.delete(w);
    } else if (now >= w.deadline) {
      watched.delete(w);
      w.report({ module: w.module, generation: w.generation, timers: w.timers.describe(w.mapFrame) });
    }
  }
  schedule();
}
