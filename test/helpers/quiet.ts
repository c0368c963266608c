/** Waiting on a QuietWatch in a test: its quiet time passing, and a lease that keeps writing through it. */
import { deferred } from '../../src/core/deferred.js';
import type { QuietLease, QuietWatch } from '../../src/worker/quiet-watch.js';

/** Short, so that a test waits little for it; no assertion depends on how fast anything runs. */
export const QUIET_MS = 20;

/**
 * Resolves once `quiet` has gone a whole quiet time past every lease it
 * watched before this call: each of them that wrote nothing since has been
 * told it is quiet. (A lease last seen writing at the check after this call
 * is quiet by the second quiet time of this one.)
 */
export function quietTimePassed(quiet: QuietWatch): Promise<void> {
  return new Promise((resolve) => {
    let rounds = 0;
    const marker: QuietLease = {
      written: () => 0,
      gone: () => false,
      quiet: () => (++rounds === 2 ? resolve() : quiet.watch(marker)),
    };
    quiet.watch(marker);
  });
}

/**
 * At each of the quiet watch's looks, before it looks at the leases watched
 * after this one, `write` runs (once `start` was called): a stream it writes to
 * is never quiet. Resolves at the look three quiet times on (having written at
 * that look too); it writes no more after that.
 */
export function writingAtEachLook(quiet: QuietWatch, write: () => void): { start(): void; done: Promise<void> } {
  const done = deferred<void>();
  let since: number | undefined;
  let finished = false;
  let looks = 0;
  quiet.watch({
    written: () => {
      if (since === undefined || finished) return looks;
      write();
      if (Date.now() - since >= 3 * quiet.quietMs) {
        finished = true;
        done.resolve();
      }
      return ++looks;
    },
    gone: () => finished,
    quiet: () => {},
  });
  return { start: () => (since = Date.now()), done: done.promise };
}
