/**
 * Waits that grow while something keeps failing: exponential from `initialMs`
 * up to `maxMs`. The reconnect loop (reconnect.ts), rollout slots and the
 * restart policy wait with one. Each wait is drawn at random from the upper
 * half of its step, so a fleet that lost its store or broker at once does not
 * come back at once; a schedule one process keeps for itself (crash
 * replacements) has no such crowd to spread and passes `random: false`.
 */
export class Backoff {
  private step = 0;

  constructor(
    private readonly initialMs = 250,
    private readonly maxMs = 15_000,
    /** Where the jitter comes from (a test passes a fixed one to see the sequence); false: none. */
    private readonly random: (() => number) | false = Math.random,
  ) {}

  /** The wait after `step` failures in a row before this one (0: the first). */
  delay(step: number): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** step);
    return this.random ? Math.round(ceiling / 2 + (this.random() * ceiling) / 2) : ceiling;
  }

  next(): number {
    const delay = this.delay(this.step);
    if (this.initialMs * 2 ** this.step < this.maxMs) this.step++;
    return delay;
  }

  reset(): void {
    this.step = 0;
  }
}
