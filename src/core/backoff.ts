/**
 * Reconnect delays: exponential from `initialMs` up to `maxMs`, each drawn at
 * random from the upper half of its step, so a fleet that lost its store or
 * broker at once does not come back at once. Every reconnect loop of graft
 * (bus links, config stores, fleet membership, rollout slots) waits with one.
 */
export class Backoff {
  private step = 0;

  constructor(
    private readonly initialMs = 250,
    private readonly maxMs = 15_000,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.step);
    if (ceiling < this.maxMs) this.step++;
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  reset(): void {
    this.step = 0;
  }
}
