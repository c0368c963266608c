import { withTimeout } from '../../bench/lib/wait.js';

/** `promise`, or a failure naming what the test waited for: a bound on waiting for an event, never a wait for time to pass. */
export function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return withTimeout(promise, ms, what);
}
