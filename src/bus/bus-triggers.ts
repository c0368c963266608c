import type { Logger } from '../core/log.js';
import { AmqpTrigger } from './amqp-trigger.js';
import type { BusUrl } from '../net/bus-url.js';
import { NatsTrigger } from './nats-trigger.js';
import { OrderDesk, type OrderTarget } from './order-desk.js';
import type { OrderKey } from './order-key.js';
import type { BusStatus, OrderTrigger } from './order-trigger.js';

/** `graft start --bus … --bus-key … --name … --host-id …`. */
export interface BusOptions {
  urls: BusUrl[];
  key: OrderKey;
  service: string;
  host: string;
  /** The service's order memory (order-memory.ts), shared by all its masters on this host. */
  memoryFile?: string;
}

/** Every bus a master takes orders from, sharing one desk (one guard: an order is carried out once, whichever bus brought it). */
export class BusTriggers {
  private readonly triggers: OrderTrigger[];

  constructor(options: BusOptions, target: OrderTarget, log: Logger) {
    const names = { service: options.service, host: options.host };
    const busLog = log.child({ service: options.service, hostId: options.host });
    const desk = new OrderDesk({ ...names, key: options.key, ...(options.memoryFile ? { memoryFile: options.memoryFile } : {}) }, target, busLog);
    this.triggers = options.urls.map((bus) => (bus.scheme === 'nats' ? new NatsTrigger(bus, desk, names, busLog) : new AmqpTrigger(bus, desk, names, busLog)));
  }

  start(): void {
    for (const t of this.triggers) t.start();
  }

  status(): BusStatus[] {
    return this.triggers.map((t) => t.status());
  }

  async close(): Promise<void> {
    await Promise.all(this.triggers.map((t) => t.close()));
  }
}
