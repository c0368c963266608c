import { errorMessage, isErrorCode } from '../core/errors.js';
import type { Fields } from '../core/log.js';
import { getPath, splitPath, touches } from './key-path.js';

export type ConfigListener = (next: unknown, previous: unknown) => void | Promise<void>;

export interface ListenerFailure {
  path: string;
  error: string;
  /** The worker thread whose subscriber failed (absent: the main thread's). */
  thread?: number;
  /** Set when graft knows the failure: GRAFT_THREAD_BUSY for a thread that did not take the change in time. */
  code?: string;
}

/** A failure as a log record's fields: the version, the thread (if not the main thread's), the key path, the code graft knows. */
export function listenerFailureFields(configVersion: number, f: ListenerFailure): Fields {
  return { configVersion, ...(f.thread !== undefined ? { thread: f.thread } : {}), path: f.path, ...(isErrorCode(f.code) ? { code: f.code } : {}), error: f.error };
}

interface Subscription {
  path: string;
  listener: ConfigListener;
}

/**
 * `config.on('db.pool', (next, prev) => …)`: called once per change that
 * touches the key path or anything under it. Async listeners are awaited with
 * a timeout; a listener that throws or times out is reported, never fatal.
 */
export class Subscriptions {
  private readonly subs = new Set<Subscription>();

  add(path: string, listener: ConfigListener): () => void {
    splitPath(path); // reject malformed paths at subscription time
    const sub = { path, listener };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }

  get size(): number {
    return this.subs.size;
  }

  async notify(changed: readonly string[], next: unknown, previous: unknown, timeoutMs: number): Promise<ListenerFailure[]> {
    const due = [...this.subs].filter((s) => changed.some((c) => touches(s.path, c)));
    const failures: ListenerFailure[] = [];
    await Promise.all(
      due.map(async (s) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(() => s.listener(getPath(next, s.path), getPath(previous, s.path))),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`listener did not finish within ${timeoutMs} ms`)), timeoutMs);
            }),
          ]);
        } catch (err) {
          failures.push({ path: s.path, error: errorMessage(err) });
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return failures;
  }
}
