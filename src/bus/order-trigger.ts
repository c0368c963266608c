import type { BusStatus } from './bus-link.js';

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
