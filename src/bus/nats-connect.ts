import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { BusUrl } from './bus-url.js';

/**
 * A NATS connection to one `--bus nats://` address. Once connected the
 * client reconnects by itself, forever (maxReconnectAttempts -1), with
 * jitter; the first connection is retried by the caller.
 */
export function natsConnect(bus: BusUrl, name: string, reconnect: boolean): Promise<NatsConnection> {
  return connect({
    servers: bus.server,
    ...(bus.user !== undefined ? { user: bus.user, pass: bus.pass ?? '' } : {}),
    name,
    reconnect,
    maxReconnectAttempts: reconnect ? -1 : 0,
    reconnectTimeWait: 1000,
    reconnectJitter: 1000,
    timeout: 5000,
  });
}
