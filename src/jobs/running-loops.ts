import { isMainThread, threadId } from 'node:worker_threads';
import { setLoopHooks } from '../config/threads/loop-hooks.js';
import { postToHub } from '../config/threads/messages.js';

/**
 * The job loops running in this thread, and whether the process started one:
 * a job worker (no server) is ready once it has, in its main thread or in a
 * worker thread. The threads channel reaches them through its loop hooks.
 */
export interface RunningLoop {
  stop(options?: { abort?: boolean }): Promise<void>;
}

const kLoops = Symbol.for('graft.loops');
const loops = ((globalThis as Record<symbol, unknown>)[kLoops] ??= new Set<RunningLoop>()) as Set<RunningLoop>;

let announce: (() => void) | undefined;
const started = new Promise<void>((resolve) => (announce = resolve));

/** Every loop running in this thread; a draining worker stops them before it exits. */
export function runningLoops(): ReadonlySet<RunningLoop> {
  return loops;
}

export function addLoop(handle: RunningLoop): void {
  loops.add(handle);
  announceLoopStarted();
}

export function removeLoop(handle: RunningLoop): void {
  loops.delete(handle);
}

/** Stop every loop of this thread (each running iteration finishes); resolves when they have ended. */
export async function stopRunningLoops(): Promise<void> {
  await Promise.all([...loops].map((l) => l.stop()));
}

/** A loop started here, or (told by the thread hub) in a worker thread of this process. */
export function announceLoopStarted(): void {
  if (!announce) return;
  announce();
  announce = undefined;
  // The main thread decides when the worker is ready: tell it.
  if (!isMainThread) postToHub({ graft: 'loop', thread: threadId });
}

/** Resolves when this process starts its first loop. */
export function whenLoopStarted(): Promise<void> {
  return started;
}

setLoopHooks({ stopLoops: stopRunningLoops, loopStarted: announceLoopStarted });
