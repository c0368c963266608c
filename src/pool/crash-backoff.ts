/**
 * Delay before replacing a crashed worker: immediate for a one-off crash,
 * doubling while crashes repeat, capped. Five crashes within the window is a
 * crash loop: reported once, and replacements keep the capped pace instead of
 * spinning. --restart-delay is the least delay: the doubling takes over only
 * once it is longer (one schedule, not a delay added to a backoff).
 */
export class CrashBackoff {
  private crashes: number[] = [];
  private looping = false;
  private readonly windowMs: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly loopThreshold: number;
  private readonly minDelayMs: number;

  constructor(options: { minDelayMs?: number; windowMs?: number; baseMs?: number; maxMs?: number; loopThreshold?: number } = {}) {
    this.minDelayMs = options.minDelayMs ?? 0;
    this.windowMs = options.windowMs ?? 60_000;
    this.baseMs = options.baseMs ?? 100;
    this.maxMs = options.maxMs ?? 10_000;
    this.loopThreshold = options.loopThreshold ?? 5;
  }

  /** Record a crash; returns the delay before the replacement and whether a crash loop just began. */
  record(now = Date.now()): { delayMs: number; loopStarted: boolean; recent: number } {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    const recent = this.crashes.length;
    const backoffMs = recent <= 1 ? 0 : Math.min(this.maxMs, this.baseMs * 2 ** (recent - 2));
    const delayMs = Math.max(this.minDelayMs, backoffMs);
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
