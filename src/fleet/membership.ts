import { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import { ReconnectLoop, type ConnectionStatus, type ReconnectSession } from '../core/reconnect.js';
import { followReconnects } from '../net/nats-connect.js';
import { FleetStore, DEFAULT_REGISTRY_TTL_MS, storeError } from './fleet-store.js';
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

/** For `graft status`: the connection to the fleet's store, and whether this master's entry is written. */
export type MembershipStatus = ConnectionStatus & { key: string; registered: boolean };

/**
 * A master's membership of its fleet: it connects to the fleet's store in the
 * background (a store that is down never stops a service from starting or
 * serving), registers, heartbeats, and rewrites its entry after every change.
 * The NATS client reconnects by itself once connected; a connection it gives
 * up on is opened again by the reconnect loop, which registers again.
 */
export class Membership {
  private registration: Registration | undefined;
  /** close() removes this host's entry. */
  private deregister = false;
  private readonly link: ReconnectLoop;

  constructor(
    private readonly options: MembershipOptions,
    private readonly log: Logger,
  ) {
    this.link = new ReconnectLoop({
      what: 'fleet store',
      url: options.address.display,
      log: log.child({ fleet: options.address.display }),
      backoff: new Backoff(250, 5000),
      classify: (err) => storeError(options.address, err),
      meanwhile: 'registering once it answers',
      session: (session) => this.session(session),
    });
  }

  start(): void {
    this.link.start();
  }

  private async session(session: ReconnectSession): Promise<void> {
    const store = await FleetStore.open(this.options.address, { reconnect: true, name: `graft ${this.options.key}` });
    let registration: Registration | undefined;
    try {
      const kv = await store.registry();
      if (session.signal.aborted) return;
      session.connected();
      void followReconnects(store.nc, session);
      registration = new Registration(kv, this.options.record, this.log, this.options.beatMs ?? DEFAULT_REGISTRY_TTL_MS / 3);
      this.registration = registration;
      await registration.start();
      const record = this.options.record();
      this.log.info('registered in the fleet', { fleet: this.options.address.display, service: record.service, host: record.host, codeVersion: record.code });
      const lost = await Promise.race([store.nc.closed(), session.ended]);
      if (lost) throw lost;
    } finally {
      if (this.registration === registration) this.registration = undefined;
      await registration?.close(this.deregister);
      await store.close();
    }
  }

  status(): MembershipStatus {
    return { ...this.link.status(), key: this.options.key, registered: this.registration?.written === true };
  }

  /** After a command: the entry says what the master runs now. */
  changed(): void {
    void this.registration?.update();
  }

  /** Stop; `deregister` removes this host's entry (not when a successor master took over). */
  async close(deregister: boolean): Promise<void> {
    this.deregister = deregister;
    await this.link.close();
  }
}
