/**
 * Everything a benchmark starts is undone on the way out, also on failure or
 * Ctrl-C: temp dirs removed, processes stopped, then SIGKILLed if they linger.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { log } from './log.js';
import { waitUntil } from './wait.js';
import { processAlive } from '../../src/core/process-alive.js';

const cleanups: Array<() => unknown> = [];
let cleaning: Promise<void> | undefined;

/** Run `fn` on the way out, last registered first. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** Runs every registered cleanup once (a second call while one runs joins it). */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup failed: ${String(err)}`);
      }
    }
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}

/** A new temp dir, removed at cleanup. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Alive and not a zombie (a reparented zombie may never be reaped here). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return processAlive(pid);
  }
}

export function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Waits up to graceMs for `pids` to exit on their own, then SIGKILLs those still alive. */
export async function reap(pids: Iterable<number>, graceMs: number): Promise<void> {
  const list = [...pids];
  if (!(await waitUntil(() => !list.some(isAlive), graceMs))) for (const pid of list.filter(isAlive)) killHard(pid);
}

/**
 * A benchmark's entry point: runs `main`, logs a failure (exit code 1), and
 * cleans up after it, or on SIGINT/SIGTERM (exit code 130).
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await main();
  } catch (err) {
    log(`failed: ${(err as Error)?.stack ?? String(err)}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}
