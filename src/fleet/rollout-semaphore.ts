import type { KV } from '@nats-io/kv';
import { Backoff } from '../core/backoff.js';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { GraftError } from '../core/errors.js';
import { processAlive } from '../core/process-alive.js';

/** This machine and this process's pid namespace: where a holder's pid means something. */
function localPlace(): string {
  let ns = 'pid:?';
  try {
    ns = readlinkSync('/proc/self/ns/pid');
  } catch {
    // no /proc: the host name alone
  }
  return `${hostname()}:${ns}`;
}


/** A slot held: refreshed while held, so a live holder never loses it to the bucket's TTL. */
export interface HeldSlot {
  readonly key: string;
  release(): Promise<void>;
}

/**
 * The store-side semaphore of a service's rollouts: `size` keys
 * (`<service>.slot.0` … `.slot.<size-1>`), each taken with a create that fails
 * if the key exists. However many operators roll out at once, no more than
 * `size` hosts of the service change at a time (operators that give different
 * --max-unavailable share the larger one). A holder that dies frees its slot
 * when the bucket's TTL expires it, or at once for the next operator on the
 * same machine, which sees that the holder's process (`host:pid`) is gone.
 */
export class RolloutSlots {
  /** Who holds a slot: this machine, its pid namespace and this process (`host:pid:[ns]:pid`). */
  static localHolder(): string {
    return `${localPlace()}:${process.pid}`;
  }

  constructor(
    private readonly kv: KV,
    private readonly service: string,
    private readonly size: number,
    private readonly holder: string,
    private readonly ttlMs: number,
  ) {}

  /** Take a free slot, waiting for one up to timeoutMs. */
  async acquire(timeoutMs: number): Promise<HeldSlot> {
    const deadline = Date.now() + timeoutMs;
    const backoff = new Backoff(50, 500);
    for (;;) {
      for (let n = 0; n < this.size; n++) {
        const key = `${this.service}.slot.${n}`;
        let revision: number;
        try {
          revision = await this.kv.create(key, this.holder);
        } catch (err) {
          if (/wrong last sequence|key exists/i.test((err as Error).message)) {
            // Taken; by an operator of this machine that died (its release never reached the store)? Then it is free now.
            if (await this.freeIfHolderDied(key)) n--;
            continue;
          }
          throw new GraftError('GRAFT_STORE_UNREACHABLE', `rollout slot ${key} could not be taken: ${(err as Error).message}`, { cause: err });
        }
        return this.held(key, revision);
      }
      if (Date.now() >= deadline) {
        throw new GraftError('GRAFT_FLEET_BUSY', `every one of ${this.size} rollout slot(s) of ${this.service} stayed taken for ${Math.round(timeoutMs / 1000)} s: another rollout is running (or died and its slot expires within ${Math.round(this.ttlMs / 1000)} s)`);
      }
      await new Promise((r) => setTimeout(r, backoff.next()));
    }
  }

  /** Whether a rollout holds one of the slots now: the hosts it is changing are unready for that moment. */
  async taken(): Promise<boolean> {
    for (let n = 0; n < this.size; n++) {
      const entry = await this.kv.get(`${this.service}.slot.${n}`).catch(() => null);
      if (entry?.operation === 'PUT') return true;
    }
    return false;
  }

  /** A slot whose holder is a process of this machine that no longer runs is deleted (only that revision of it). */
  private async freeIfHolderDied(key: string): Promise<boolean> {
    const entry = await this.kv.get(key).catch(() => null);
    if (!entry || entry.operation !== 'PUT') return false;
    const holder = entry.string();
    const at = holder.lastIndexOf(':');
    const pid = Number(holder.slice(at + 1));
    // Same machine and same pid namespace (containers may share a host name), and that process is gone.
    if (at < 0 || holder.slice(0, at) !== localPlace() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) return false;
    try {
      await this.kv.delete(key, { previousSeq: entry.revision });
      return true;
    } catch {
      return false; // changed meanwhile: someone else's now
    }
  }

  private held(key: string, revision: number): HeldSlot {
    let current = revision;
    let refreshing: Promise<unknown> = Promise.resolve();
    const refresh = setInterval(() => {
      refreshing = this.kv.update(key, this.holder, current).then(
        (r) => (current = r),
        () => {}, // expired and maybe taken by another: release then leaves it alone
      );
    }, Math.max(1000, this.ttlMs / 3));
    refresh.unref();
    return {
      key,
      release: async () => {
        clearInterval(refresh);
        await refreshing;
        // Only our own revision: a slot that expired and was taken by another holder stays theirs.
        await this.kv.delete(key, { previousSeq: current }).catch(() => {});
      },
    };
  }
}
