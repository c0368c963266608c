import { GraftError, errorMessage } from '../core/errors.js';
import type { BusUrl } from '../net/bus-url.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsConnect } from '../net/nats-connect.js';
import { verdict, type OrderOutcome, type SignedOrder } from './order.js';
import type { OrderKey } from './order-key.js';
import { OutcomeCollector, unreachable, type SendOptions } from './order-send.js';
import { subjects } from './subjects.js';

/**
 * An order over NATS. To one host: a request on `graft.<service>.orders.<host>`,
 * answered with that host's outcome (what `graft fleet` does). To `*`: published on
 * `graft.<service>.orders`, outcomes collected from `graft.<service>.outcomes.*`.
 */
/**
 * One order to one host by request and reply (`graft order --host`, every
 * step of `graft fleet`). Only that host's answer to this order counts: a
 * reply naming another order or host, or not JSON, is not believed.
 */
export async function requestFromHost(nc: NatsConnection, order: SignedOrder, key: OrderKey, timeoutMs: number, where: string): Promise<OrderOutcome> {
  const subject = subjects.hostOrders(order.service, order.host);
  let reply;
  try {
    reply = await nc.request(subject, JSON.stringify(order), { timeout: timeoutMs });
  } catch (err) {
    const noOne = noResponders(err);
    throw new GraftError(
      'GRAFT_ORDER_TIMEOUT',
      noOne
        ? `no master of service ${order.service} on host ${order.host} takes orders on ${where} (started without --bus there, or stopped)`
        : `host ${order.host} did not answer within ${Math.round(timeoutMs / 1000)} s (${errorMessage(err)}); the order may still be carried out: see its master's log`,
      { cause: err },
    );
  }
  let outcome: OrderOutcome;
  try {
    outcome = JSON.parse(reply.string()) as OrderOutcome;
  } catch {
    throw new GraftError('GRAFT_ORDER_REFUSED', `the answer on ${subject} is not JSON: something other than a graft master answers there`);
  }
  if (outcome?.id !== order.id || outcome.host !== order.host) {
    throw new GraftError('GRAFT_ORDER_REFUSED', `the answer on ${subject} is not ${order.host}'s answer to order ${order.id} (it names host ${JSON.stringify(outcome?.host)} and order ${JSON.stringify(outcome?.id)})`);
  }
  const v = verdict(outcome, key);
  if (v.is === 'forged') throw new GraftError('GRAFT_ORDER_FORGED', `the answer on ${subject} to order ${order.id} is not believed: ${v.why}; something other than a graft master answers there`);
  return v.is === 'unverified' ? { ...outcome, unverified: v.why } : outcome;
}

/** NATS said at once that nothing subscribes to the subject (no master of that host listens there now). */
export function noResponders(err: unknown): boolean {
  return /no responders/i.test(errorMessage(err)) || (err as { isNoResponders?: () => boolean }).isNoResponders?.() === true;
}

/** requestFromHost's failure when no master listened on the host's subject at all. */
export function unheard(err: unknown): boolean {
  return err instanceof GraftError && err.code === 'GRAFT_ORDER_TIMEOUT' && noResponders(err.cause);
}

export async function sendOverNats(bus: BusUrl, order: SignedOrder, options: SendOptions): Promise<OrderOutcome[]> {
  const nc = await natsConnect(bus, `graft order ${order.service}`, false).catch((err: unknown) => {
    throw unreachable(bus, err);
  });
  try {
    const payload = JSON.stringify(order);
    if (order.host !== '*') {
      const outcome = await requestFromHost(nc, order, options.key, options.timeoutMs, bus.display);
      options.onOutcome(outcome);
      return [outcome];
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
