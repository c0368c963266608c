import { GraftError } from '../core/errors.js';

export type BusTransport = 'nats' | 'amqp';

/** A `--bus` address: which transport, where, and a form safe to log (no password). */
export interface BusUrl {
  transport: BusTransport;
  /** As given (with credentials): what the client connects with. */
  url: string;
  /** `host:port` for the NATS client. */
  server: string;
  user: string | undefined;
  pass: string | undefined;
  /** The address without its password, for logs and `graft status`. */
  display: string;
}

const SCHEMES: Record<string, BusTransport> = { 'nats:': 'nats', 'amqp:': 'amqp' };
const DEFAULT_PORTS: Record<BusTransport, string> = { nats: '4222', amqp: '5672' };

/** `nats://[user:pass@]host:port` or `amqp://user:pass@host:port[/vhost]`; anything else is GRAFT_STORE_URL. */
export function parseBusUrl(text: string, flag = '--bus'): BusUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(text)} is not a URL; expected nats://host:4222 or amqp://user:pass@host:5672[/vhost]`);
  }
  const transport = SCHEMES[url.protocol];
  if (!transport || !url.hostname) {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(redact(url))}: graft sends orders over nats:// or amqp:// (RabbitMQ), not ${url.protocol}//`);
  }
  const port = url.port || DEFAULT_PORTS[transport];
  return {
    transport,
    url: text,
    server: `${url.hostname}:${port}`,
    user: url.username ? decodeURIComponent(url.username) : undefined,
    pass: url.password ? decodeURIComponent(url.password) : undefined,
    display: redact(url),
  };
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href.replace(/\/$/, '');
}
