import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { errorMessage } from '../core/errors.js';
import { declareExchanges, ownQueue } from './amqp-layout.js';
import { LinkedTrigger, type BusSession } from './order-trigger.js';
import { subjects } from './subjects.js';

/**
 * Orders over RabbitMQ (seed 003's layout, without its arbitrary code): a
 * fanout exchange `graft.<service>.orders`, one exclusive auto-delete queue
 * per master bound to it, and outcomes published to the fanout exchange
 * `graft.<service>.outcomes`. amqplib does not re-declare anything after a
 * lost connection: each reconnection (the reconnect loop) declares it all again.
 */
export class AmqpTrigger extends LinkedTrigger {
  readonly name = 'amqp';

  protected async open(): Promise<BusSession> {
    const model = await connect(this.bus.url, { timeout: 5000, clientProperties: { connection_name: `graft ${this.names.service}@${this.names.host} (pid ${process.pid})` } });
    let lost: (err: Error | undefined) => void = () => {};
    const closed = new Promise<Error | undefined>((resolve) => (lost = resolve));
    let lastError: Error | undefined;
    model.on('error', (err: Error) => (lastError = err));
    model.on('close', () => lost(lastError ?? new Error('the connection closed')));
    try {
      const channel = await model.createChannel();
      // A channel error (a refused declaration, a publish to a missing exchange) closes the channel only: start over.
      channel.on('error', (err: Error) => (lastError = err));
      channel.on('close', () => void model.close().catch(() => {}));
      await declareExchanges(channel, this.names.service);
      const queue = await ownQueue(channel, subjects.ordersExchange(this.names.service));
      await channel.consume(
        queue,
        (msg) => {
          if (msg) void this.take(channel, msg);
          else {
            // The broker cancelled the consumer (queue deleted, node failover): start over, declare and bind again.
            lastError = new Error('the broker cancelled the order consumer');
            void model.close().catch(() => {});
          }
        },
        { noAck: true, exclusive: true },
      );
      this.log.debug('bus queue bound', { transport: 'amqp', queue, exchange: subjects.ordersExchange(this.names.service) });
    } catch (err) {
      await model.close().catch(() => {});
      throw err;
    }
    return { closed, close: () => closeQuietly(model) };
  }

  private async take(channel: Channel, msg: ConsumeMessage): Promise<void> {
    const outcome = await this.desk.receive(msg.content, { transport: 'amqp', fanout: true });
    if (!outcome) return;
    try {
      channel.publish(subjects.outcomesExchange(this.names.service), '', Buffer.from(JSON.stringify(outcome)), { contentType: 'application/json' });
    } catch (err) {
      this.log.warn('order outcome not published', { transport: 'amqp', id: outcome.id, error: errorMessage(err) });
    }
  }
}

async function closeQuietly(model: ChannelModel): Promise<void> {
  await model.close().catch(() => {});
}
