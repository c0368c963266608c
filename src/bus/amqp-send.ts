import { connect } from 'amqplib';
import { declareExchanges, ownQueue } from './amqp-layout.js';
import type { BusUrl } from '../net/bus-url.js';
import type { OrderOutcome, SignedOrder } from './order.js';
import { OutcomeCollector, unreachable, type SendOptions } from './order-send.js';
import { subjects } from './subjects.js';

/** An order over RabbitMQ: published to the service's orders fanout; outcomes read from a queue of our own on its outcomes fanout. */
export async function sendOverAmqp(bus: BusUrl, order: SignedOrder, options: SendOptions): Promise<OrderOutcome[]> {
  const model = await connect(bus.url, { timeout: 5000, clientProperties: { connection_name: `graft order ${order.service}` } }).catch((err: unknown) => {
    throw unreachable(bus, err);
  });
  model.on('error', () => {}); // reported by the failing call
  try {
    const channel = await model.createChannel();
    await declareExchanges(channel, order.service);
    const queue = await ownQueue(channel, subjects.outcomesExchange(order.service));
    const collector = new OutcomeCollector(order, options);
    await channel.consume(queue, (msg) => msg && collector.take(msg.content), { noAck: true, exclusive: true });
    channel.publish(subjects.ordersExchange(order.service), '', Buffer.from(JSON.stringify(order)), { contentType: 'application/json' });
    return await collector.done;
  } finally {
    await model.close().catch(() => {});
  }
}
