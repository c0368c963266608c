import { parseBusUrl, type BusUrl } from '../bus/bus-url.js';
import { GraftError } from '../errors.js';

/** Where a fleet registers and takes its rollout slots: a NATS server with JetStream. */
export type FleetAddress = BusUrl & { transport: 'nats' };

export function parseFleetUrl(value: string, flag = '--fleet'): FleetAddress {
  const url = parseBusUrl(value, flag);
  if (url.transport !== 'nats') {
    throw new GraftError('GRAFT_STORE_URL', `${flag} ${JSON.stringify(url.display)}: graft keeps its fleet registry in NATS JetStream KV; give nats://[user:pass@]host:port`);
  }
  return url as FleetAddress;
}
