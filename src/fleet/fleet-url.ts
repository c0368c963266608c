import { GraftError } from '../errors.js';

/** Where a fleet registers and takes its rollout slots: a NATS server with JetStream. */
export interface FleetAddress {
  kind: 'nats';
  /** `host:port`, as the NATS client takes it. */
  servers: string;
  user?: string;
  pass?: string;
  /** The URL without its password, for logs and status. */
  display: string;
}

export function parseFleetUrl(value: string, flag = '--fleet'): FleetAddress {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(value)} is not a URL; give nats://host:port`);
  }
  if (url.protocol !== 'nats:') {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(value)}: graft keeps its fleet registry in NATS JetStream KV; give nats://[user:pass@]host:port`);
  }
  const servers = `${url.hostname}:${url.port || '4222'}`;
  return {
    kind: 'nats',
    servers,
    ...(url.username ? { user: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { pass: decodeURIComponent(url.password) } : {}),
    display: `nats://${url.username ? `${decodeURIComponent(url.username)}@` : ''}${servers}`,
  };
}
