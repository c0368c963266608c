import { GraftError } from '../core/errors.js';
import { parseAddress, redact, type Address } from './address.js';

export type BusTransport = 'nats' | 'amqp';

/** A `--bus` address; its scheme is the transport, and for AMQP the path is the vhost. */
export type BusUrl = Address<BusTransport>;

export const BUS_FORMS = 'nats://[user:pass@]host:port or amqp://user:pass@host:port[/vhost] (RabbitMQ)';

/** `nats://[user:pass@]host:port` or `amqp://user:pass@host:port[/vhost]`; anything else is GRAFT_BUS_URL. */
export function parseBusUrl(text: string, flag = '--bus'): BusUrl {
  return parseAddress(text, ['nats', 'amqp'], (fault) => {
    const why = fault.scheme !== undefined ? `graft sends orders over nats:// or amqp:// (RabbitMQ), not ${fault.scheme}://` : `${fault.why}; give ${BUS_FORMS}`;
    return new GraftError('GRAFT_BUS_URL', `${flag} ${JSON.stringify(redact(text))}: ${why}`);
  });
}
