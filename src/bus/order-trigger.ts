import { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import { ReconnectLoop, type ConnectionStatus, type ReconnectSession } from '../core/reconnect.js';
import type { BusUrl } from '../net/bus-url.js';
import type { OrderDesk } from './order-desk.js';
import { unreachable } from './order-send.js';

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

/** What `graft status` shows of one bus connection. */
export type BusStatus = ConnectionStatus & { transport: string };

/** One open connection of a transport: resolves `closed` when it is lost for good. */
export interface BusSession {
  readonly closed: Promise<Error | undefined>;
  close(): Promise<void>;
}

/**
 * What every transport shares: the reconnect loop keeps its connection
 * (open() makes one, subscribed), the desk takes the orders. The master
 * starts even while the bus is down (a service must not depend on its broker
 * to serve): it warns with GRAFT_BUS_UNREACHABLE and keeps trying.
 */
export abstract class LinkedTrigger implements OrderTrigger {
  abstract readonly name: string;
  private readonly link: ReconnectLoop;

  constructor(
    protected readonly bus: BusUrl,
    protected readonly desk: OrderDesk,
    protected readonly names: { service: string; host: string },
    protected readonly log: Logger,
  ) {
    this.link = new ReconnectLoop({
      what: 'bus',
      url: bus.display,
      log: log.child({ transport: bus.scheme, url: bus.display }),
      backoff: new Backoff(),
      classify: (err) => unreachable(bus, err),
      meanwhile: 'the service serves meanwhile, without bus orders',
      session: (session) => this.session(session),
    });
  }

  /** Connect and subscribe; a client that reconnects by itself reports its drops to `session`. */
  protected abstract open(session: ReconnectSession): Promise<BusSession>;

  start(): void {
    this.link.start();
  }

  status(): BusStatus {
    return { transport: this.bus.scheme, ...this.link.status() };
  }

  close(): Promise<void> {
    return this.link.close();
  }

  private async session(session: ReconnectSession): Promise<void> {
    const open = await this.open(session);
    session.connected();
    const lost = await Promise.race([open.closed, session.ended]);
    if (session.signal.aborted) {
      await open.close().catch(() => {});
      return;
    }
    throw lost ?? new Error('the connection closed');
  }
}
