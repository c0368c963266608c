import { GraftError, errorMessage } from '../errors.js';
import type { BusUrl } from './bus-url.js';
import { natsConnect } from './nats-connect.js';
import type { OrderOutcome, SignedOrder } from './order.js';
import { OutcomeCollector, unreachable, type SendOptions } from './order-send.js';
import { subjects } from './subjects.js';

/**
 * An order over NATS. To one host: a request on `graft.<service>.orders.<host>`,
 * answered with that host's outcome (what `graft fleet` does). To `*`: published on
 * `graft.<service>.orders`, outcomes collected from `graft.<service>.outcomes.*`.
 */
export async function sendOverNats(bus: BusUrl, order: SignedOrder, options: SendOptions): Promise<OrderOutcome[]> {
  const nc = await natsConnect(bus, `graft order ${order.service}`, false).catch((err: unknown) => {
    throw unreachable(bus, err);
  });
  try {
    const payload = JSON.stringify(order);
    if (order.host !== '*') {
      try {
        const reply = await nc.request(subjects.hostOrders(order.service, order.host), payload, { timeout: options.timeoutMs });
        const outcome = JSON.parse(reply.string()) as OrderOutcome;
        options.onOutcome(outcome);
        return [outcome];
      } catch (err) {
        const noOne = /no responders/i.test(errorMessage(err)) || (err as { isNoResponders?: () => boolean }).isNoResponders?.() === true;
        throw new GraftError(
          'GRAFT_ORDER_TIMEOUT',
          noOne
            ? `no master of service ${order.service} on host ${order.host} listens on ${bus.display}`
            : `host ${order.host} did not answer within ${options.timeoutMs / 1000} s (${errorMessage(err)}); the order may still be carried out`,
          { cause: err },
        );
      }
    }
    const collector = new OutcomeCollector(order, options);
    nc.subscribe(subjects.allOutcomes(order.service), { callback: (err, msg) => void (err || collector.take(msg.data)) });
    await nc.flush();
    nc.publish(subjects.orders(order.service), payload);
    return await collector.done;
  } finally {
    await nc.close().catch(() => {});
  }
}
