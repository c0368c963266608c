import type { KV } from '@nats-io/kv';
import { Backoff } from '../core/backoff.js';
import { GraftError } from '../core/errors.js';

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
 * when the bucket's TTL expires it.
 */
export class RolloutSlots {
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
          if (/wrong last sequence|key exists/i.test((err as Error).message)) continue; // taken
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
