import { GraftError, errorMessage } from '../core/errors.js';
import type { BusUrl } from '../net/bus-url.js';
import { isNatsAuthError } from '../net/nats-connect.js';
import { verdict, type OrderOutcome, type SignedOrder } from './order.js';
import type { OrderKey } from './order-key.js';

export interface SendOptions {
  /** The key the order was signed with: the masters' answers are checked with it. */
  key: OrderKey;
  timeoutMs: number;
  /** Stop collecting once this many hosts answered (an order to `*`). */
  expect?: number | undefined;
  /** Each host's outcome as it arrives. */
  onOutcome(outcome: OrderOutcome): void;
  /** A forged answer (a success not signed with the fleet key): never counted as a host's outcome. */
  onDisbelieved?(outcome: OrderOutcome, why: string): void;
}

/** What sends an order over one transport and collects the outcomes. */

/**
 * The outcomes of `order` arriving on a subscription, one per host, until
 * `expect` hosts answered or the time is up.
 */
export class OutcomeCollector {
  /** One answer per host: a believed one, else the unverified failure it sent (see verdict). */
  private readonly byHost = new Map<string, OrderOutcome>();
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
        // Unverified failures are reported at the end, for the hosts that sent nothing believed.
        for (const o of this.byHost.values()) if (o.unverified) options.onOutcome(o);
        resolve([...this.byHost.values()]);
      };
    });
  }

  get outcomes(): OrderOutcome[] {
    return [...this.byHost.values()];
  }

  take(data: Uint8Array): void {
    let outcome: OrderOutcome;
    try {
      outcome = JSON.parse(Buffer.from(data).toString('utf8')) as OrderOutcome;
    } catch {
      return;
    }
    if (outcome.id !== this.order.id || (this.order.host !== '*' && outcome.host !== this.order.host)) return;
    const held = this.byHost.get(outcome.host);
    if (held && !held.unverified) return;
    const v = verdict(outcome, this.options.key);
    if (v.is === 'forged') return this.options.onDisbelieved?.(outcome, v.why);
    if (v.is === 'unverified') {
      if (!held) this.byHost.set(outcome.host, { ...outcome, unverified: v.why });
      return;
    }
    this.byHost.set(outcome.host, outcome);
    this.options.onOutcome(outcome);
    const believed = [...this.byHost.values()].filter((o) => !o.unverified).length;
    if (this.options.expect !== undefined && believed >= this.options.expect) this.finish();
  }
}

export function unreachable(bus: BusUrl, err: unknown): GraftError {
  // NATS says it in words; RabbitMQ with ACCESS_REFUSED (403).
  const auth = isNatsAuthError(err) || /access.refused|ACCESS_REFUSED|\b403\b/i.test(errorMessage(err));
  return new GraftError(auth ? 'GRAFT_STORE_AUTH' : 'GRAFT_BUS_UNREACHABLE', `${bus.display}: ${errorMessage(err)}`, { cause: err });
}
