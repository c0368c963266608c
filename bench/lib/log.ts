import { performance } from 'node:perf_hooks';

/** performance.now() when the benchmark started: the origin of log lines and of "total run time". */
export const benchStart = performance.now();

/** Seconds since the benchmark started. */
export const elapsedS = (): number => (performance.now() - benchStart) / 1000;

/** A progress line on stderr (stdout carries the results). */
export function log(msg: string): void {
  process.stderr.write(`[bench ${elapsedS().toFixed(1).padStart(6)}s] ${msg}\n`);
}
