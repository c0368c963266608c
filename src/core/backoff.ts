/**
 * Reconnect delays: exponential from `initialMs` up to `maxMs`, each drawn at
 * random from the upper half of its step, so a fleet that lost its store or
 * broker at once does not come back at once. The reconnect loop
 * (reconnect.ts) waits with one, and so do rollout slots and restart policies.
 */
export class Backoff {
  private step = 0;

  constructor(
    private readonly initialMs = 250,
    private readonly maxMs = 15_000,
    /** Where the jitter comes from (a test passes a fixed one to see the sequence). */
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.step);
    if (ceiling < this.maxMs) this.step++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.step = 0;
  }
}
