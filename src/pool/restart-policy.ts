import { Backoff } from '../core/backoff.js';
import type { ErrorCode } from '../core/errors.js';

/**
 * What PM2 users know as restart policies, in terms of generations
 * (`graft start --max-memory --restart-delay --max-restarts --min-uptime`).
 */
export interface RestartPolicy {
  /** A worker whose RSS stays over this is replaced by a fresh one of its generation, then drained. */
  maxMemoryBytes: number | undefined;
  /** The least wait before a crashed worker is replaced; the crash backoff takes over once it is longer. */
  restartDelayMs: number;
  /** Unstable crashes in a row a generation may have replaced; the next one is not (unset: no limit). */
  maxRestarts: number | undefined;
  /** A worker that crashes before it has been ready this long crashed unstable. */
  minUptimeMs: number;
}

export const DEFAULT_POLICY: RestartPolicy = { maxMemoryBytes: undefined, restartDelayMs: 0, maxRestarts: undefined, minUptimeMs: 1000 };

/** Something wrong with the live generation that graft stopped repairing on its own: shown by `graft status` until a reload replaces it. */
export interface Degraded {
  code: Extract<ErrorCode, 'GRAFT_MAX_RESTARTS' | 'GRAFT_WORKER_MEMORY'>;
  generation: number;
  since: string;
  message: string;
}

export interface CrashVerdict {
  /** The worker crashed before it had been ready for min uptime. */
  unstable: boolean;
  /** Whether to start a replacement. */
  replace: boolean;
  /** This crash used up --max-restarts (reported once). */
  exhaustedNow: boolean;
}

/** What to do about a worker of the live generation that died on its own. */
export interface CrashOutcome extends CrashVerdict {
  /** How long to wait before its replacement (when replaced). */
  delayMs: number;
  /** This crash began a crash loop (reported once). */
  loopStarted: boolean;
  /** Crashes in the last minute, this one included. */
  recent: number;
}

/** What to do about a worker that stayed over --max-memory. */
export interface MemoryVerdict {
  /** How long to wait before asking for its replacement. */
  delayMs: number;
  /** Fresh workers just began to go over right away (reported once). */
  churnStarted: Degraded | undefined;
}

const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`;

/** A worker that goes over --max-memory within this long of becoming ready went over right away. */
export const MEMORY_SETTLE_MS = 60_000;

/**
 * The restart policy as one pool applies it: the pool asks it what to do when
 * a worker dies or stays over --max-memory, and keeps no count of its own.
 * Crashes are paced across the pool (a crash loop outlives a reload that does
 * not fix it); everything else is a generation's own standing (its record).
 */
export class Restarts {
  private readonly crashes: CrashBackoff;

  constructor(readonly policy: RestartPolicy) {
    this.crashes = new CrashBackoff({ minDelayMs: policy.restartDelayMs });
  }

  /** Whether workers' heartbeats are watched for memory at all (--max-memory). */
  get watchesMemory(): boolean {
    return this.policy.maxMemoryBytes !== undefined;
  }

  /** A new generation's record, which starts clean: a reload is how a degraded generation is left behind. */
  generation(generation: number): GenerationRecord {
    return new GenerationRecord(this.policy, generation);
  }

  /** A worker of the live generation (its record) died on its own after being ready readyForMs (undefined: it never was). */
  crashed(record: GenerationRecord, readyForMs: number | undefined, lastError: string, now = Date.now()): CrashOutcome {
    const verdict = record.crashed(readyForMs, lastError);
    if (!verdict.replace) return { ...verdict, delayMs: 0, loopStarted: false, recent: 0 };
    return { ...verdict, ...this.crashes.record(now) };
  }

  /** True while the pool's recent crashes reach the crash-loop threshold. */
  inCrashLoop(now = Date.now()): boolean {
    return this.crashes.inLoop(now);
  }
}

/**
 * Delay before replacing a crashed worker: immediate for a one-off crash,
 * doubling while crashes repeat, capped. Five crashes within the window is a
 * crash loop: reported once, and replacements keep the capped pace instead of
 * spinning. --restart-delay is the least delay: the doubling takes over only
 * once it is longer (one schedule, not a delay added to a backoff). The
 * crashes still in the window are the backoff's step, so a quiet minute
 * brings the pace back to immediate.
 */
export class CrashBackoff {
  private crashes: number[] = [];
  private looping = false;
  private readonly windowMs: number;
  private readonly schedule: Backoff;
  private readonly loopThreshold: number;
  private readonly minDelayMs: number;

  constructor(options: { minDelayMs?: number; windowMs?: number; baseMs?: number; maxMs?: number; loopThreshold?: number } = {}) {
    this.minDelayMs = options.minDelayMs ?? 0;
    this.windowMs = options.windowMs ?? 60_000;
    this.schedule = new Backoff(options.baseMs ?? 100, options.maxMs ?? 10_000, false);
    this.loopThreshold = options.loopThreshold ?? 5;
  }

  /** Record a crash; returns the delay before the replacement and whether a crash loop just began. */
  record(now = Date.now()): { delayMs: number; loopStarted: boolean; recent: number } {
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    const recent = this.crashes.length;
    const backoffMs = recent <= 1 ? 0 : this.schedule.delay(recent - 2);
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

/**
 * One generation's standing against the policy. Crashes of workers that had
 * not been ready for min uptime are unstable, as in PM2; after maxRestarts
 * of them in a row (a crash after a stable run starts the count again), the
 * generation's crashed workers are no longer replaced, until a reload brings
 * a new generation.
 *
 * Memory: a worker over the limit is asked to be replaced once at a time.
 * When a replacement does not help (fresh workers keep going over right away:
 * the app needs more than the limit, or leaks that fast; or the fresh worker
 * fails to start), asking again at every heartbeat would only churn, so the
 * next ask waits, longer each time, on one backoff, until a worker that
 * served a while shows the generation is fine again.
 */
export class GenerationRecord {
  private unstable = 0;
  exhausted: Degraded | undefined;
  private readonly memory: MemoryWatch | undefined;
  /** Workers whose replacement for memory is asked for and not yet settled. */
  private readonly asked = new WeakSet<object>();
  /** Workers over the limit whose fresh replacement failed to start: not asked for again before this time. */
  private readonly retryAt = new WeakMap<object, number>();
  /** Workers in a row replaced for memory within MEMORY_SETTLE_MS of being ready. */
  private rightAway = 0;
  private readonly memoryBackoff = new Backoff(1000, 60_000);
  private churn: Degraded | undefined;

  constructor(
    private readonly policy: RestartPolicy,
    readonly generation: number,
  ) {
    if (policy.maxMemoryBytes !== undefined) this.memory = new MemoryWatch(policy.maxMemoryBytes);
  }

  /** A worker of this generation died on its own after being ready readyForMs (undefined: it never was). */
  crashed(readyForMs: number | undefined, lastError?: string): CrashVerdict {
    const unstable = readyForMs === undefined || readyForMs < this.policy.minUptimeMs;
    if (this.exhausted) return { unstable, replace: false, exhaustedNow: false };
    this.unstable = unstable ? this.unstable + 1 : 0;
    const max = this.policy.maxRestarts;
    if (max === undefined || this.unstable <= max) return { unstable, replace: true, exhaustedNow: false };
    this.exhausted = {
      code: 'GRAFT_MAX_RESTARTS',
      generation: this.generation,
      since: new Date().toISOString(),
      message:
        `workers of generation ${this.generation} crashed ${this.unstable} times in a row before serving for ${this.policy.minUptimeMs} ms` +
        ` (--max-restarts ${max}, --min-uptime ${this.policy.minUptimeMs}ms): its crashed workers are no longer replaced` +
        `${lastError ? ` (last error: ${lastError})` : ''}; fix the app and run \`graft reload\``,
    };
    return { unstable, replace: false, exhaustedNow: true };
  }

  /**
   * A heartbeat of one of this generation's ready workers, readyForMs after it
   * became ready: a verdict once it has stayed over --max-memory (the worker
   * counts as asked for until memorySettled), undefined otherwise.
   */
  memoryBeat(worker: object, rss: number, readyForMs: number, now = Date.now()): MemoryVerdict | undefined {
    if (!this.memory || this.asked.has(worker) || (this.retryAt.get(worker) ?? 0) > now) return undefined;
    if (!this.memory.beat(worker, rss)) return undefined;
    this.asked.add(worker);
    return this.overMemory(readyForMs, rss);
  }

  /** The ask for the worker's replacement is settled (replaced or not): it may be asked for again. */
  memorySettled(worker: object): void {
    this.asked.delete(worker);
  }

  /** The fresh worker meant to replace one over the limit failed to start: returns how long until the next try. */
  memoryReplacementFailed(worker: object, now = Date.now()): number {
    const retryInMs = this.memoryBackoff.next();
    this.retryAt.set(worker, now + retryInMs);
    return retryInMs;
  }

  /** A fresh worker took the place of one over the limit: unless fresh ones go over right away, the next ask need not wait. */
  memoryReplaced(): void {
    if (!this.churn) this.memoryBackoff.reset();
  }

  /**
   * A worker of this generation stayed over --max-memory, readyForMs after it
   * became ready. Returns how long to wait before replacing it, and the
   * degradation when fresh workers just began to go over right away.
   */
  overMemory(readyForMs: number, rss: number): MemoryVerdict {
    if (readyForMs >= MEMORY_SETTLE_MS) {
      this.rightAway = 0;
      this.churn = undefined;
      this.memoryBackoff.reset();
      return { delayMs: 0, churnStarted: undefined };
    }
    // The first may be a one-off (a request that asked for too much): replaced at once.
    if (++this.rightAway < 2) return { delayMs: 0, churnStarted: undefined };
    if (this.churn) return { delayMs: this.memoryBackoff.next(), churnStarted: undefined };
    this.churn = {
      code: 'GRAFT_WORKER_MEMORY',
      generation: this.generation,
      since: new Date().toISOString(),
      message:
        `fresh workers of generation ${this.generation} keep going over --max-memory ${mb(this.policy.maxMemoryBytes ?? 0)} right away (rss ${mb(rss)}` +
        ` within ${Math.round(readyForMs / 1000)} s of starting): replacing them does not help, so replacements back off (up to a minute);` +
        ` raise --max-memory or find what the app holds`,
    };
    return { delayMs: this.memoryBackoff.next(), churnStarted: this.churn };
  }

  degraded(): Degraded[] {
    return [this.exhausted, this.churn].filter((d): d is Degraded => d !== undefined);
  }
}
