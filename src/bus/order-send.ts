import { GraftError, errorMessage } from '../core/errors.js';
import type { BusUrl } from '../net/bus-url.js';
import { isNatsAuthError } from '../net/nats-connect.js';
import type { OrderOutcome, SignedOrder } from './order.js';

export interface SendOptions {
  timeoutMs: number;
  /** Stop collecting once this many hosts answered (an order to `*`). */
  expect?: number | undefined;
  /** Each host's outcome as it arrives. */
  onOutcome(outcome: OrderOutcome): void;
}

/** What sends an order over one transport and collects the outcomes. */

/**
 * The outcomes of `order` arriving on a subscription, one per host, until
 * `expect` hosts answered or the time is up.
 */
export class OutcomeCollector {
  readonly outcomes: OrderOutcome[] = [];
  readonly done: Promise<OrderOutcome[]>;
  private finish: () => void = () => {};

  constructor(
    private readonly order: SignedOrder,
    private readonly options: SendOptions,
  ) {
    this.done = new Promise((resolve) => {
      const timer = setTimeout(() => this.finish(), options.timeoutMs);
      this.finish = () => {
        clearTimeout(timer);
        resolve(this.outcomes);
      };
    });
  }

  take(data: Uint8Array): void {
    let outcome: OrderOutcome;
    try {
      outcome = JSON.parse(Buffer.from(data).toString('utf8')) as OrderOutcome;
    } catch {
      return;
    }
    if (outcome.id !== this.order.id || this.outcomes.some((o) => o.host === outcome.host)) return;
    if (this.order.host !== '*' && outcome.host !== this.order.host) return;
    this.outcomes.push(outcome);
    this.options.onOutcome(outcome);
    if (this.options.expect !== undefined && this.outcomes.length >= this.options.expect) this.finish();
  }
}

export function unreachable(bus: BusUrl, err: unknown): GraftError {
  // NATS says it in words; RabbitMQ with ACCESS_REFUSED (403).
  const auth = isNatsAuthError(err) || /access.refused|ACCESS_REFUSED|\b403\b/i.test(errorMessage(err));
  return new GraftError(auth ? 'GRAFT_STORE_AUTH' : 'GRAFT_BUS_UNREACHABLE', `${bus.display}: ${errorMessage(err)}`, { cause: err });
}
