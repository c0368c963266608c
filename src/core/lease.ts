/**
 * A lease pins one generation while work runs on it: an in-flight request, a
 * running task, a checked-out connection. The generation is not disposed until
 * every lease on it is released.
 */
export interface Lease<T> {
  readonly version: number;
  readonly value: T;
  /** Idempotent: releasing twice counts once. */
  release(): void;
}

export class LeaseCounter {
  private count = 0;
  private waiters: Array<() => void> = [];

  get active(): number {
    return this.count;
  }

  acquire(): () => void {
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count--;
      if (this.count === 0) this.wake();
    };
  }

  /** Resolves when no lease is held (at once if none is). */
  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
