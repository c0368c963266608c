import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../core/backoff.js';
import { errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { FleetStore, DEFAULT_REGISTRY_TTL_MS } from './fleet-store.js';
import type { FleetAddress } from '../net/fleet-url.js';
import { Registration, type HostRecord } from './registration.js';

export interface MembershipOptions {
  address: FleetAddress;
  /** This master's entry in the registry (`<service>.<host-id>`). */
  key: string;
  /** The record, from the master's status (the code version is the live generation's). */
  record: () => HostRecord;
  beatMs?: number;
}

/**
 * A master's membership of its fleet: it connects to the fleet's store in the
 * background (a store that is down never stops a service from starting or
 * serving), registers, heartbeats, and rewrites its entry after every change.
 */
export class Membership {
  private store: FleetStore | undefined;
  private registration: Registration | undefined;
  private closed = false;
  private joining: Promise<void> | undefined;
  private readonly stopWaiting = new AbortController();

  constructor(
    private readonly options: MembershipOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.joining = this.join().catch((err: unknown) => this.log.error('fleet registration stopped', errorFields(err)));
  }

  private async join(): Promise<void> {
    const beatMs = this.options.beatMs ?? DEFAULT_REGISTRY_TTL_MS / 3;
    let attempt = 0;
    const backoff = new Backoff(250, 5000);
    while (!this.closed) {
      let store: FleetStore | undefined;
      try {
        store = await FleetStore.open(this.options.address, { reconnect: true, name: `graft ${this.options.key}` });
        const kv = await store.registry();
        if (this.closed) throw new Error('closed');
        this.store = store;
        this.registration = new Registration(kv, this.options.record, this.log, beatMs);
        break;
      } catch (err) {
        await store?.close();
        if (this.closed) return;
        if (attempt++ % 10 === 0) this.log.warn('fleet store unreachable; registering once it answers', { fleet: this.options.address.display, attempt, ...errorFields(err) });
        await sleep(backoff.next(), undefined, { signal: this.stopWaiting.signal }).catch(() => {});
      }
    }
    if (!this.registration) return;
    await this.registration.start();
    const record = this.options.record();
    this.log.info('registered in the fleet', { fleet: this.options.address.display, service: record.service, host: record.host, codeVersion: record.code });
  }

  /** For `graft status`: where this master registers, and whether its entry is written. */
  status(): { fleet: string; key: string; registered: boolean } {
    return { fleet: this.options.address.display, key: this.options.key, registered: this.registration?.written === true };
  }

  /** After a command: the entry says what the master runs now. */
  changed(): void {
    if (!this.registration || this.closed) return;
    void this.registration.update();
  }

  /** Stop; `deregister` removes this host's entry (not when a successor master took over). */
  async close(deregister: boolean): Promise<void> {
    this.closed = true;
    this.stopWaiting.abort();
    await this.joining;
    await this.registration?.close(deregister);
    await this.store?.close();
  }
}
