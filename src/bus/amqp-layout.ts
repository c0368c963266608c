import type { Channel } from 'amqplib';
import { subjects } from './subjects.js';

/**
 * The RabbitMQ layout masters and `graft order` share (declared the same way
 * by both, or RabbitMQ refuses the second declaration): a durable fanout
 * exchange for a service's orders, one for its outcomes, and per listener an
 * exclusive, auto-delete, server-named queue bound to one of them.
 */
export async function declareExchanges(channel: Channel, service: string): Promise<void> {
  await channel.assertExchange(subjects.ordersExchange(service), 'fanout', { durable: true });
  await channel.assertExchange(subjects.outcomesExchange(service), 'fanout', { durable: true });
}

/** A queue of this process's own, bound to `exchange`; gone when the connection closes. */
export async function ownQueue(channel: Channel, exchange: string): Promise<string> {
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
  await channel.bindQueue(queue, exchange, '');
  return queue;
}
