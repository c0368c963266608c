import { errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/** Why a worker was replaced by a fresh one: a low-cardinality word (a metric label). */
export type RestartReason = 'crash' | 'heartbeat' | 'config' | 'memory';

/** Why a generation was rolled back, as one word (a metric label). */
export type RollbackReason = 'crash' | 'errors' | 'health-url';

/** Who asked for a reload, as one word (the `trigger` label): the first asker of a coalesced reload. */
export type ReloadTrigger = 'signal' | 'control' | 'watch' | 'bus' | 'config' | 'swap' | 'deploy' | 'rollback' | 'other';

/**
 * What happened in the master, told to whoever watches it (metrics, the live
 * status page) at the place it happened. Each event carries the generation or
 * version it is about, like the log line written beside it.
 */
export type MasterEvent =
  | {
      type: 'reload';
      trigger: ReloadTrigger;
      /** The full reason, as `graft status` shows it (`control,signal`, `config v7`…). */
      reason: string;
      /** `abandoned`: the master began stopping while it ran. */
      outcome: 'ok' | 'failed' | 'abandoned';
      durationMs: number;
      generation?: number;
      previous?: number;
      code?: string;
      error?: string;
    }
  | { type: 'worker-restart'; reason: RestartReason; generation: number; worker: number; workerPid: number }
  /** A worker stayed over --max-memory: its replacement is asked for (it waits its turn in the arbiter). */
  | { type: 'worker-over-memory'; generation: number; worker: number; workerPid: number; rss: number }
  /** A generation that turned unhealthy within --min-healthy-time was rolled back (`reason`: crash, errors, health-url). */
  | { type: 'rollback'; reason: RollbackReason; generation: number; release?: string; to?: string }
  | { type: 'config'; version: number; accepted: boolean; source: string; changed: string[]; code?: string; error?: string }
  | {
      type: 'swap';
      /** `reload`: the change could not swap in place and fell back to a worker reload. */
      outcome: 'ok' | 'failed' | 'reload' | 'unchanged';
      /** The modules that now serve a new generation (`name@generation`), or the one the order named. */
      modules: string[];
      source: string;
      durationMs: number;
      code?: string;
      error?: string;
    };

export type Observe = (event: MasterEvent) => void;

/** Nobody watching (a pool or coordinator built without a master, as in unit tests). */
export const unobserved: Observe = () => {};

/**
 * The master's observers: every event goes to each of them. One that throws
 * is logged and does not stop the others, nor the change that emitted it.
 */
export class Observers {
  private readonly list: Observe[] = [];

  constructor(private readonly log: Logger) {}

  /** Returns what takes the observer off again. */
  add(observer: Observe): () => void {
    this.list.push(observer);
    return () => {
      const at = this.list.indexOf(observer);
      if (at >= 0) this.list.splice(at, 1);
    };
  }

  readonly emit: Observe = (event) => {
    // Over a copy: an observer may take itself off while it is told.
    for (const observe of [...this.list]) {
      try {
        observe(event);
      } catch (err) {
        this.log.warn('an observer of master events failed', { event: event.type, ...errorFields(err) });
      }
    }
  };
}

/** The word for a reload's reason: `config v7` is `config`, `swap: fallback` is `swap`, `control,signal` is `control`. */
export function reloadTrigger(reason: string): ReloadTrigger {
  const first = reason.split(',')[0]!.trim();
  const word = first.split(/[\s:]/)[0]!;
  const known: ReloadTrigger[] = ['signal', 'control', 'watch', 'bus', 'config', 'swap', 'deploy', 'rollback'];
  return (known as string[]).includes(word) ? (word as ReloadTrigger) : 'other';
}
