import { parseBusUrl, type BusUrl } from './bus-url.js';
import { GraftError } from '../core/errors.js';

/** Where a fleet registers and takes its rollout slots: a NATS server with JetStream. */
export type FleetAddress = BusUrl & { transport: 'nats' };

export function parseFleetUrl(value: string, flag = '--fleet'): FleetAddress {
  if (!/^nats:\/\//i.test(value.trim())) {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(value.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@'))}: graft keeps its fleet registry in NATS JetStream KV; give nats://[user:pass@]host:port`);
  }
  const url = parseBusUrl(value, flag);
  if (new URL(value).pathname.replace(/\/+$/, '') !== '') {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(url.display)}: give the server only (nats://host:port); the registry's bucket is graft_fleet`);
  }
  return url as FleetAddress;
}
