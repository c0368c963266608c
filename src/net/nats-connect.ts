import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ReconnectSession } from '../core/reconnect.js';

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
 * with jitter; the first connection is always retried by the caller (a
 * ReconnectLoop), which hears of the client's own reconnects through
 * followReconnects().
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

/**
 * The client's own reconnects, told to the reconnect loop's session that
 * holds it (so status and logs read as for any connection, and nothing
 * retries on top of the client). Each dial is a `reconnecting`; a dial that
 * is followed by another failed. Ends when the connection is closed.
 */
export async function followReconnects(nc: NatsConnection, session: ReconnectSession): Promise<void> {
  let dialing = false;
  for await (const s of nc.status()) {
    if (s.type === 'disconnect') session.lost(new Error(`lost the connection to ${s.server}`));
    else if (s.type === 'reconnecting' && dialing) session.failed();
    else if (s.type === 'reconnect') session.connected({ server: s.server });
    if (s.type === 'disconnect' || s.type === 'reconnect') dialing = false;
    else if (s.type === 'reconnecting') dialing = true;
  }
}
