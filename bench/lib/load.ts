import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { percentileOfSorted } from './stats.js';
import { sleep } from './wait.js';

/**
 * Keep-alive HTTP load with autocannon (pipelining 1), bounded in time, with
 * the accounting a reload benchmark needs and autocannon does not do itself:
 *
 * - latencies of the responses inside a window (the reloads), not only of the
 *   whole run, measured here: after the server closes a connection autocannon
 *   keeps the dropped request in its queue and from then on times every
 *   response on that client from the previous request's start (about double);
 * - requests autocannon sent and never saw answered nor failed. autocannon
 *   reconnects silently when the server closes a connection (FIN), dropping
 *   the request it had just written on it. For a real client that request
 *   fails ("socket hang up"), unless the server had announced the close with
 *   `Connection: close`: a conforming HTTP/1.1 client sends nothing more on
 *   such a connection, but autocannon does, so those are counted apart.
 *
 * Depends on nothing of bench/ but stats and wait, so tests can use it too.
 */
export interface LoadOptions {
  url: string;
  /** Default 64. */
  connections?: number;
  /** Hard bound on the run; stop() may end it earlier. */
  durationS: number;
  /** Per-request timeout (autocannon counts it as an error and a timeout); default 10. */
  timeoutS?: number;
  /** Record every response's latency from the start (the window is open); default true. */
  recordLatencies?: boolean;
}

export interface LoadFailure {
  /** performance.now() when the client saw it. */
  at: number;
  code: string;
}

export interface LoadSummary {
  durationS: number;
  /** Responses received. */
  answered: number;
  /** Requests failed as autocannon counts them (connection errors and timeouts). */
  errors: number;
  timeouts: number;
  resets: number;
  /** Reconnects the server refused (ECONNREFUSED): nothing listened on the port. */
  refused: number;
  non2xx: number;
  /** Sent on a connection the server then closed, no answer, no error, no `Connection: close`. */
  unanswered: number;
  /** Sent after the server answered `Connection: close` on that connection (a conforming client would not have). */
  sentAfterClose: number;
  /** `Connection: close` responses (a draining server closing keep-alive connections). */
  closeResponses: number;
  rps: number;
  /** Percentiles of the responses inside the recording window, ms (measured here, see above). */
  window: { count: number; p50: number; p99: number; max: number };
  failures: LoadFailure[];
}

interface Outstanding {
  conn: object;
  afterClose: boolean;
  sentAt: number;
}

/** What the accounting reads from autocannon's client; not in its public types. */
interface ClientInternals {
  conn: object;
}

class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  summary(): { count: number; p50: number; p99: number; max: number } {
    const sorted = this.data.slice(0, this.length).sort();
    return { count: sorted.length, p50: percentileOfSorted(sorted, 0.5), p99: percentileOfSorted(sorted, 0.99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
  }
}

export interface LoadRun {
  result: Promise<LoadSummary>;
  /** Resolves with the first response: the load is running (rejects if the run ends without one). */
  flowing: Promise<void>;
  /** Open or close the latency window. */
  record(open: boolean): void;
  stop(): void;
}

/** Runs not finished yet, so that a benchmark can stop them all on the way out. */
const live = new Set<LoadRun>();

/** Stops every run still going. */
export function stopAllLoads(): void {
  for (const run of live) run.stop();
}

export function startLoad(options: LoadOptions): LoadRun {
  const samples = new Samples();
  const failures: LoadFailure[] = [];
  let recording = options.recordLatencies ?? true;
  let resets = 0;
  let refused = 0;
  const perClient: Array<{ client: ClientInternals; outstanding: Outstanding[] }> = [];
  const closing = new WeakSet<object>();
  let closeResponses = 0;
  let firstResponse!: () => void;
  const flowing = new Promise<void>((resolve) => (firstResponse = resolve));

  let finish!: (r: autocannon.Result) => void;
  let fail!: (err: unknown) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });

  const instance = autocannon(
    {
      url: options.url,
      connections: options.connections ?? 64,
      pipelining: 1,
      duration: options.durationS,
      timeout: options.timeoutS ?? 10,
      setupClient: (client) => {
        const internals = client as unknown as ClientInternals;
        // Events the client emits beyond its public typings ('request', 'connError', 'timeout').
        const events = client as unknown as NodeJS.EventEmitter;
        const outstanding: Outstanding[] = [];
        perClient.push({ client: internals, outstanding });
        let keepAlive = true;
        // The client emits 'request' just before writing it on client.conn.
        events.on('request', () => outstanding.push({ conn: internals.conn, afterClose: closing.has(internals.conn), sentAt: performance.now() }));
        // http-parser-js's header info, whatever the public types say.
        client.on('headers', (info) => {
          keepAlive = (info as unknown as { shouldKeepAlive?: boolean }).shouldKeepAlive !== false;
        });
        client.on('response', (_status: number, _bytes: number, responseTime: number) => {
          // With pipelining 1, a response answers the oldest request still open on its connection.
          const conn = internals.conn;
          const i = outstanding.findIndex((o) => o.conn === conn);
          const latency = i >= 0 ? performance.now() - outstanding[i]!.sentAt : responseTime;
          if (i >= 0) outstanding.splice(i, 1);
          if (!keepAlive) {
            closing.add(conn);
            closeResponses++;
          }
          if (recording) samples.push(latency);
          firstResponse();
        });
        // Emitted while client.conn is still the failed connection.
        events.on('connError', () => {
          const conn = internals.conn;
          for (let i = outstanding.length - 1; i >= 0; i--) if (outstanding[i]!.conn === conn) outstanding.splice(i, 1);
        });
        // Emitted after the client has replaced the connection that timed out.
        events.on('timeout', () => {
          const conn = internals.conn;
          for (let i = outstanding.length - 1; i >= 0; i--) if (outstanding[i]!.conn !== conn) outstanding.splice(i, 1);
        });
      },
    },
    (err, r) => (err ? fail(err) : finish(r)),
  );
  instance.on('reqError', (err: NodeJS.ErrnoException) => {
    const code = err?.code ?? err?.message ?? String(err);
    if (code === 'ECONNRESET') resets++;
    if (code === 'ECONNREFUSED') refused++;
    if (failures.length < 200) failures.push({ at: performance.now(), code });
  });

  const result = done.then((r): LoadSummary => {
    let unanswered = 0;
    let sentAfterClose = 0;
    for (const { client, outstanding } of perClient) {
      for (const o of outstanding) {
        if (o.conn === client.conn) continue; // in flight when the run stopped
        if (o.afterClose) sentAfterClose++;
        else unanswered++;
      }
    }
    return {
      durationS: r.duration,
      answered: r.requests.total,
      errors: r.errors,
      timeouts: r.timeouts,
      resets,
      refused,
      non2xx: r.non2xx,
      unanswered,
      sentAfterClose,
      closeResponses,
      rps: r.duration > 0 ? r.requests.total / r.duration : 0,
      window: samples.summary(),
      failures,
    };
  });
  const started = Promise.race([flowing, done.then(() => Promise.reject(new Error(`no response from ${options.url} during the whole load run`)))]);
  started.catch(() => {}); // a bench that never awaits it must not see an unhandled rejection
  const run: LoadRun = {
    result,
    flowing: started,
    record: (open) => {
      recording = open;
    },
    stop: () => instance.stop(),
  };
  live.add(run);
  void result.finally(() => live.delete(run)).catch(() => {});
  return run;
}

/** A warm-up run of warmupS (not measured), then a run of durationS with every response's latency recorded. */
export async function measureLoad(options: LoadOptions & { warmupS: number }): Promise<LoadSummary> {
  const { warmupS, ...o } = options;
  if (warmupS > 0) await startLoad({ ...o, durationS: warmupS, recordLatencies: false }).result;
  return startLoad({ ...o, recordLatencies: true }).result;
}

/**
 * Load while `work` runs: started settleMs before it, so that it is in full
 * swing; its latency window open exactly while `work` runs (windowS); tailMs
 * more after it; durationS bounds the whole run.
 */
export async function loadDuring<T>(
  options: LoadOptions & { settleMs: number; tailMs: number },
  work: () => Promise<T>,
): Promise<{ value: T; windowS: number; summary: LoadSummary }> {
  const { settleMs, tailMs, ...o } = options;
  const run = startLoad({ ...o, recordLatencies: false });
  let value!: T;
  let windowS = 0;
  try {
    await sleep(settleMs);
    run.record(true);
    const t0 = performance.now();
    value = await work();
    windowS = (performance.now() - t0) / 1000;
    run.record(false);
    await sleep(tailMs);
  } finally {
    run.stop();
  }
  return { value, windowS, summary: await run.result };
}
