import { errorMessage } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { addLoop, removeLoop } from './running-loops.js';
import { config as defaultStore, type Config, type ConfigStore } from '../config/store.js';

export interface LoopContext<C> {
  /** The snapshot this iteration runs on; it does not change under the iteration. */
  config: C;
  configVersion: number;
  /** Aborted when the loop stops, or on a config change when onChange is 'abort'. */
  signal: AbortSignal;
  iteration: number;
}

export interface LoopOptions<C> {
  /** On a config change: let the running iteration finish (default), or abort it. */
  onChange?: 'finish' | 'abort';
  /** Pause between iterations (default 0). */
  intervalMs?: number;
  name?: string;
  store?: ConfigStore<C>;
}

export interface LoopHandle {
  /** Run no further iteration; the running one finishes (or is aborted: if asked, or if onChange is 'abort'). Resolves when it has ended. */
  stop(options?: { abort?: boolean }): Promise<void>;
  readonly iterations: number;
}

export { runningLoops, whenLoopStarted } from './running-loops.js';

/**
 * A job worker's main loop: each iteration runs with the current snapshot;
 * a config change applies from the next iteration on. The same in a worker
 * thread, whose snapshots follow its process's.
 */
export function loop<C = Config>(body: (ctx: LoopContext<C>) => unknown, options: LoopOptions<C> = {}): LoopHandle {
  const store = (options.store ?? defaultStore) as ConfigStore<C>;
  const log = createLogger({ role: process.env.GRAFT_ENTRY ? 'worker' : 'app', loop: options.name ?? 'loop' });
  const stopping = new AbortController();
  let running: AbortController | undefined;
  let iterations = 0;
  let abortOnStop = false;
  const unsubscribe = store.on('', () => {
    if (options.onChange === 'abort') running?.abort(new Error('config changed'));
  });
  const done = (async () => {
    await Promise.resolve();
    while (!stopping.signal.aborted) {
      const iteration = new AbortController();
      running = iteration;
      const onStop = () => {
        if (abortOnStop) iteration.abort(stopping.signal.reason);
      };
      stopping.signal.addEventListener('abort', onStop, { once: true });
      const snapshot = store.snapshotInfo;
      try {
        await body({ config: snapshot.data, configVersion: snapshot.version, signal: iteration.signal, iteration: iterations });
      } catch (err) {
        if (!iteration.signal.aborted) log.error('loop iteration failed; the next one runs', { iteration: iterations, configVersion: snapshot.version, error: errorMessage(err) });
      } finally {
        stopping.signal.removeEventListener('abort', onStop);
        iterations++;
      }
      if (iteration.signal.aborted && !stopping.signal.aborted) log.info('loop iteration aborted by a config change', { iteration: iterations - 1, configVersion: snapshot.version });
      if (options.intervalMs && !stopping.signal.aborted) await pause(options.intervalMs, stopping.signal);
    }
  })();
  const handle: LoopHandle = {
    async stop(stopOptions) {
      abortOnStop = stopOptions?.abort ?? options.onChange === 'abort';
      stopping.abort(new Error('loop stopped'));
      unsubscribe();
      await done;
      removeLoop(handle);
    },
    get iterations() {
      return iterations;
    },
  };
  addLoop(handle);
  return handle;
}

/** Wait ms, or less if the signal aborts; leaves no listener behind either way. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
