/**
 * --max-memory: which workers stay over the limit. One heartbeat over it is a
 * spike (a GC that has not run yet, a big response being built); `sustain`
 * heartbeats in a row is a worker to replace.
 */
export class MemoryWatch {
  private readonly over = new WeakMap<object, number>();

  constructor(
    readonly limitBytes: number,
    private readonly sustain = 3,
  ) {}

  /** One heartbeat's RSS of a worker: true once it has been over the limit for `sustain` heartbeats in a row (then it counts afresh). */
  beat(worker: object, rss: number): boolean {
    const over = rss > this.limitBytes ? (this.over.get(worker) ?? 0) + 1 : 0;
    this.over.set(worker, over < this.sustain ? over : 0);
    return over >= this.sustain;
  }
}
