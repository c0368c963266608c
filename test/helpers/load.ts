import autocannon from 'autocannon';

export interface LoadResult {
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  resets: number;
  p50: number;
  p99: number;
  rps: number;
}

/**
 * Keep-alive HTTP load with autocannon, bounded in time (and so in count).
 * Errors counts every request the client saw fail (reset, refused, timeout).
 */
export function load(url: string, options: { connections?: number; durationS: number; timeoutS?: number }): { result: Promise<LoadResult>; stop(): void } {
  let resets = 0;
  let finish!: (r: autocannon.Result) => void;
  let fail!: (err: unknown) => void;
  const instance = autocannon(
    { url, connections: options.connections ?? 64, duration: options.durationS, timeout: options.timeoutS ?? 10, pipelining: 1 },
    (err, r) => (err ? fail(err) : finish(r)),
  );
  instance.on('reqError', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ECONNRESET') resets++;
  });
  const result = new Promise<LoadResult>((resolve, reject) => {
    fail = reject;
    finish = (r: autocannon.Result) =>
      resolve({
        requests: r.requests.total,
        errors: r.errors,
        timeouts: r.timeouts,
        non2xx: r.non2xx,
        resets,
        p50: r.latency.p50,
        p99: r.latency.p99,
        rps: r.requests.average,
      });
  });
  return { result, stop: () => instance.stop() };
}
