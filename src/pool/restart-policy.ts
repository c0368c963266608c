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

const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`;

/** A worker that goes over --max-memory within this long of becoming ready went over right away. */
export const MEMORY_SETTLE_MS = 60_000;

/**
 * One generation's standing against the policy. Crashes of workers that had
 * not been ready for min uptime are unstable, as in PM2; after maxRestarts
 * of them in a row (a crash after a stable run starts the count again), the
 * generation's crashed workers are no longer replaced, until a reload brings
 * a new generation. When fresh workers keep going over --max-memory right
 * away (the app needs more than the limit, or leaks that fast), replacing
 * them does not help: after the first, replacements back off instead of
 * churning.
 */
export class GenerationRecord {
  private unstable = 0;
  exhausted: Degraded | undefined;
  /** Workers in a row replaced for memory within MEMORY_SETTLE_MS of being ready. */
  private rightAway = 0;
  private churn: { backoff: Backoff; degraded: Degraded } | undefined;

  constructor(
    private readonly policy: RestartPolicy,
    readonly generation: number,
  ) {}

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
   * A worker of this generation stayed over --max-memory, readyForMs after it
   * became ready. Returns how long to wait before replacing it, and the
   * degradation when fresh workers just began to go over right away.
   */
  overMemory(readyForMs: number, rss: number): { delayMs: number; churnStarted: Degraded | undefined } {
    if (readyForMs >= MEMORY_SETTLE_MS) {
      this.rightAway = 0;
      this.churn = undefined;
      return { delayMs: 0, churnStarted: undefined };
    }
    // The first may be a one-off (a request that asked for too much): replaced at once.
    if (++this.rightAway < 2) return { delayMs: 0, churnStarted: undefined };
    if (this.churn) return { delayMs: this.churn.backoff.next(), churnStarted: undefined };
    const degraded: Degraded = {
      code: 'GRAFT_WORKER_MEMORY',
      generation: this.generation,
      since: new Date().toISOString(),
      message:
        `fresh workers of generation ${this.generation} keep going over --max-memory ${mb(this.policy.maxMemoryBytes ?? 0)} right away (rss ${mb(rss)}` +
        ` within ${Math.round(readyForMs / 1000)} s of starting): replacing them does not help, so replacements back off (up to a minute);` +
        ` raise --max-memory or find what the app holds`,
    };
    this.churn = { backoff: new Backoff(1000, 60_000), degraded };
    return { delayMs: this.churn.backoff.next(), churnStarted: degraded };
  }

  degraded(): Degraded[] {
    return [this.exhausted, this.churn?.degraded].filter((d): d is Degraded => d !== undefined);
  }
}
