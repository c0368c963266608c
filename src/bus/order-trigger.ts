import type { Logger } from '../core/log.js';
import { BusLink, type BusSession, type BusStatus } from './bus-link.js';
import type { BusUrl } from '../net/bus-url.js';
import type { OrderDesk } from './order-desk.js';

/**
 * A bus trigger: like a SwapTrigger (it decides when the service changes, the
 * master decides what that means), but its orders may reload, swap or change
 * the config, and each gets an outcome published back on the bus.
 */
export interface OrderTrigger {
  readonly name: string;
  start(): void;
  status(): BusStatus;
  /** Stop taking orders and close the connection (stop, step-down at an upgrade). */
  close(): Promise<void>;
}

/** What every transport shares: a BusLink keeps its connection (open() makes one session), the desk takes the orders. */
export abstract class LinkedTrigger implements OrderTrigger {
  abstract readonly name: string;
  protected readonly link: BusLink;

  constructor(
    bus: BusUrl,
    protected readonly desk: OrderDesk,
    protected readonly names: { service: string; host: string },
    protected readonly log: Logger,
  ) {
    this.link = new BusLink(bus, () => this.open(), log);
  }

  /** Connect, subscribe, and say how the session ends. */
  protected abstract open(): Promise<BusSession>;

  start(): void {
    this.link.start();
  }

  status(): BusStatus {
    return this.link.status();
  }

  close(): Promise<void> {
    return this.link.close();
  }
}
