/**
 * When a drained lease has gone quiet: a WebSocket or an SSE response that
 * has written nothing for quietMs is between messages, so ending it there
 * cuts nothing in half. One timer per drain checks every watched lease (it
 * runs only while something is watched), rather than a timer per socket.
 */
export interface QuietLease {
  /** A count that changes whenever the lease writes (bytes, or writes). */
  written(): number;
  /** Ended by itself meanwhile: watch it no longer. */
  gone(): boolean;
  /** Called once, when written() has not changed for quietMs. */
  quiet(): void;
}

export class QuietWatch {
  private readonly watched = new Map<QuietLease, { written: number; since: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly quietMs: number) {}

  watch(lease: QuietLease): void {
    this.watched.set(lease, { written: lease.written(), since: Date.now() });
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), Math.max(10, Math.floor(this.quietMs / 5)));
    this.timer.unref();
  }

  private check(): void {
    const now = Date.now();
    for (const [lease, seen] of this.watched) {
      if (lease.gone()) {
        this.watched.delete(lease);
        continue;
      }
      const written = lease.written();
      if (written !== seen.written) {
        seen.written = written;
        seen.since = now;
      } else if (now - seen.since >= this.quietMs) {
        this.watched.delete(lease);
        lease.quiet();
      }
    }
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
