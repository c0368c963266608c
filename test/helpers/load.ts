import { startLoad, type LoadSummary } from '../../bench/lib/load.js';

export type { LoadSummary };

export interface UnderLoad<T> {
  /** What the actions returned. */
  value: T;
  load: LoadSummary;
  /**
   * Requests a real client would have seen fail: errors (resets, refusals,
   * timeouts), non-2xx answers, and requests the load generator sent on a
   * connection the server then closed and silently dropped (see bench/lib/load.ts).
   */
  failed: number;
}

/**
 * Keep-alive HTTP load (autocannon, the benchmarks' accounting) that runs from
 * before the first action until the last one has finished: started, `actions`
 * runs once responses flow, then the load stops. Bounded by `maxS` (and so in
 * count): reaching the bound before the actions end fails the test.
 */
export async function underLoad<T>(url: string, actions: () => Promise<T>, options: { connections?: number; maxS?: number } = {}): Promise<UnderLoad<T>> {
  const maxS = options.maxS ?? 180;
  const run = startLoad({ url, connections: options.connections ?? 32, durationS: maxS, timeoutS: 10, recordLatencies: false });
  let value: T;
  try {
    await run.flowing;
    value = await actions();
  } finally {
    run.stop();
  }
  const load = await run.result;
  if (load.durationS >= maxS) throw new Error(`the load reached its ${maxS} s bound before the actions under test finished`);
  return { value, load, failed: load.errors + load.non2xx + load.unanswered };
}
