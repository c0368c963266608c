import { connect, type NatsConnection } from '@nats-io/transport-node';

/** The NATS server refused the credentials (or their permissions), as the client reports it. */
export function isNatsAuthError(err: unknown): boolean {
  const name = (err as Error | undefined)?.name ?? '';
  const text = err instanceof Error ? err.message : String(err);
  return name === 'AuthorizationError' || /authori[sz]ation|authentication|permissions? violation/i.test(text);
}

/** Where a NATS client connects: `host:port` and credentials (a --bus, --fleet or --config nats:// address). */
export interface NatsTarget {
  server: string;
  user: string | undefined;
  password: string | undefined;
}

/**
 * The one way graft connects to NATS (orders, the fleet registry, KV config).
 * With `reconnect`, once connected the client reconnects by itself, forever,
 * with jitter; the first connection is always retried by the caller.
 */
export function natsConnect(target: NatsTarget, name: string, reconnect: boolean, timeoutMs = 5000): Promise<NatsConnection> {
  return connect({
    servers: target.server,
    ...(target.user !== undefined ? { user: target.user, pass: target.password ?? '' } : {}),
    name,
    reconnect,
    maxReconnectAttempts: reconnect ? -1 : 0,
    reconnectTimeWait: 1000,
    reconnectJitter: 1000,
    timeout: timeoutMs,
  });
}
