import type { Logger } from '../core/log.js';

/**
 * The app's own word in a drain, without a defineService and without a
 * SIGTERM listener: `drainSignal` aborts when the worker starts draining, and
 * `onDrain(hook)` hooks run then, before graft moves the worker's connections
 * (a chat server tells its clients to reconnect, or closes their WebSockets
 * with its own code; graft then leaves those alone). The drain waits for a
 * hook's promise; one that throws is logged and the drain goes on. Kept on
 * globalThis so the app's copy of graft and the worker's are one.
 */
type DrainHook = () => unknown;

interface DrainState {
  controller: AbortController;
  hooks: Set<DrainHook>;
}

const kDrain = Symbol.for('graft.drain');
const state = ((globalThis as Record<symbol, unknown>)[kDrain] ??= { controller: new AbortController(), hooks: new Set<DrainHook>() }) as DrainState;

/** Aborted when this worker starts draining (a reload, a scale-down, a replacement, a stop). Never aborts outside graft. */
export const drainSignal: AbortSignal = state.controller.signal;

/** Run `hook` when this worker starts draining; returns a function that removes it. */
export function onDrain(hook: DrainHook): () => void {
  state.hooks.add(hook);
  return () => state.hooks.delete(hook);
}

/** The worker begins its drain: abort the signal and run the hooks (each one's failure logged). */
export async function beginDrain(log: Logger): Promise<void> {
  state.controller.abort();
  await Promise.all(
    [...state.hooks].map(async (hook) => {
      try {
        await hook();
      } catch (err) {
        log.error('a drain hook threw; the drain goes on', { err });
      }
    }),
  );
}
