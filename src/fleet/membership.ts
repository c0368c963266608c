import { setTimeout as sleep } from 'node:timers/promises';
import { errorFields } from '../errors.js';
import type { Logger } from '../log.js';
import { codeVersion } from './code-version.js';
import { FleetStore, DEFAULT_REGISTRY_TTL_MS } from './fleet-store.js';
import type { FleetAddress } from './fleet-url.js';
import { Registration, type HostRecord } from './registration.js';

export interface MembershipOptions {
  address: FleetAddress;
  entry: string;
  root: string;
  /** The record without its code version, from the master's status. */
  record: () => Omit<HostRecord, 'code'>;
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
  private code: string | undefined;
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
    this.code = await codeVersion(this.options.entry, this.options.root);
    const beatMs = this.options.beatMs ?? DEFAULT_REGISTRY_TTL_MS / 3;
    let attempt = 0;
    while (!this.closed) {
      try {
        this.store = await FleetStore.open(this.options.address, { reconnect: true, name: `graft ${this.options.record().service}/${this.options.record().host}` });
        break;
      } catch (err) {
        if (attempt++ === 0) this.log.warn('fleet store unreachable; registering once it answers', { fleet: this.options.address.display, ...errorFields(err) });
        const backoff = Math.min(5000, 250 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random());
        await sleep(backoff, undefined, { signal: this.stopWaiting.signal }).catch(() => {});
      }
    }
    if (this.closed || !this.store) return void (await this.store?.close());
    this.registration = new Registration(await this.store.registry(), () => ({ ...this.options.record(), code: this.code }), this.log, beatMs);
    await this.registration.start();
    const record = this.options.record();
    this.log.info('registered in the fleet', { fleet: this.options.address.display, service: record.service, host: record.host, codeVersion: this.code });
  }

  /** After a command: the code may have changed too (a reload or swap loads what is on disk). */
  changed(codeMayHaveChanged: boolean): void {
    if (!this.registration) return;
    void (async () => {
      if (codeMayHaveChanged) this.code = (await codeVersion(this.options.entry, this.options.root)) ?? this.code;
      await this.registration?.update();
    })();
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
