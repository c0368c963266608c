import { GraftError, errorMessage } from '../core/errors.js';
import type { BusUrl } from '../net/bus-url.js';
import { isNatsAuthError } from '../net/nats-connect.js';
import { believable, type OrderOutcome, type SignedOrder } from './order.js';
import type { OrderKey } from './order-key.js';

export interface SendOptions {
  /** The key the order was signed with: the masters' answers are checked with it. */
  key: OrderKey;
  timeoutMs: number;
  /** Stop collecting once this many hosts answered (an order to `*`). */
  expect?: number | undefined;
  /** Each host's outcome as it arrives. */
  onOutcome(outcome: OrderOutcome): void;
  /** An answer that is not believed (forged or unsigned where masters sign): never counted as a host's outcome. */
  onDisbelieved?(outcome: OrderOutcome, why: string): void;
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
    const trust = believable(outcome, this.options.key);
    if (!trust.ok) {
      this.options.onDisbelieved?.(outcome, trust.why);
      return;
    }
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
