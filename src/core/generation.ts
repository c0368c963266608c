import { LeaseCounter, type Lease } from './lease.js';

export type GenerationState = 'live' | 'draining' | 'disposed';

/** One version of whatever a slot holds, with the leases taken on it. */
export class Generation<T> {
  state: GenerationState = 'live';
  retiredAt: number | undefined;
  private readonly leases = new LeaseCounter();

  constructor(
    readonly version: number,
    readonly value: T,
  ) {}

  get inFlight(): number {
    return this.leases.active;
  }

  acquire(): Lease<T> {
    const release = this.leases.acquire();
    return { version: this.version, value: this.value, release };
  }

  /** Resolves once every lease taken on this generation is released. */
  idle(): Promise<void> {
    return this.leases.idle();
  }
}
