/**
 * Delay before replacing a crashed worker: immediate for a one-off crash,
 * doubling while crashes repeat, capped. Five crashes within the window is a
 * crash loop: reported once, and replacements keep the capped pace instead of
 * spinning.
 */
export class CrashBackoff {
  private crashes: number[] = [];
  private looping = false;

  constructor(
    private readonly windowMs = 60_000,
    private readonly baseMs = 100,
    private readonly maxMs = 10_000,
    private readonly loopThreshold = 5,
  ) {}

  /** Record a crash; returns the delay before the replacement and whether a crash loop just began. */
  record(now = Date.now()): { delayMs: number; loopStarted: boolean; recent: number } {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    const recent = this.crashes.length;
    const delayMs = recent <= 1 ? 0 : Math.min(this.maxMs, this.baseMs * 2 ** (recent - 2));
    const loopStarted = !this.looping && recent >= this.loopThreshold;
    if (loopStarted) this.looping = true;
    return { delayMs, loopStarted, recent };
  }

  /** True while the recent crashes reach the loop threshold. */
  inLoop(now = Date.now()): boolean {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    if (this.crashes.length < this.loopThreshold) this.looping = false;
    return this.looping;
  }
}
