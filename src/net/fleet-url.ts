import { GraftError } from '../core/errors.js';
import { parseAddress, redact, type Address } from './address.js';

/** Where a fleet registers and takes its rollout slots: a NATS server with JetStream (its bucket is graft_fleet). */
export type FleetAddress = Address<'nats'>;

/** `nats://[user:pass@]host:port`, no path; anything else is GRAFT_FLEET_URL. */
export function parseFleetUrl(text: string, flag = '--fleet'): FleetAddress {
  const bad = (why: string) => new GraftError('GRAFT_FLEET_URL', `${flag} ${JSON.stringify(redact(text))}: ${why}`);
  const address = parseAddress(text, ['nats'], (fault) =>
    bad(fault.scheme !== undefined ? 'graft keeps its fleet registry in NATS JetStream KV; give nats://[user:pass@]host:port' : `${fault.why}; give nats://[user:pass@]host:port`),
  );
  if (address.pathname !== '') throw bad("give the server only (nats://host:port); the registry's bucket is graft_fleet");
  return address;
}
