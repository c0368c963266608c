import { orderKeyFor, type OrderKey } from '../bus/order-key.js';
import type { OrderAction, OrderBody } from '../bus/order.js';
import { OverrideSource } from '../config/sources/override-source.js';
import { GraftError } from '../core/errors.js';

/** The flags `graft order` and `graft fleet` share for what an order says. */
export interface OrderFlags {
  'bus-key'?: string | undefined;
  set?: string[] | undefined;
  unset?: string[] | undefined;
  reset?: boolean | undefined;
}

/**
 * The key that signs and the body of an order from the command line, for
 * `graft order` and `graft fleet` alike. Every flag is checked here (the key
 * signs, each --set and --unset parses), so a bad one fails before anything
 * is sent to any host. The order lacks service, host, id and time: each
 * message to a host adds them.
 */
export function orderFromFlags(command: string, action: OrderAction, module: string | undefined, flags: OrderFlags): { key: OrderKey; order: Pick<OrderBody, 'action' | 'module' | 'config'> } {
  const key = orderKeyFor('sign', flags['bus-key'], `graft ${command}`);
  const set = flags.set ?? [];
  const unset = flags.unset ?? [];
  const changes = set.length > 0 || unset.length > 0 || flags.reset === true;
  if (changes && action !== 'config') throw new GraftError('GRAFT_BAD_ARGUMENT', `graft ${command}: --set, --unset and --reset go with a config order`);
  // The master applies them the same way; a malformed one is refused now, not on every host.
  new OverrideSource('check', set).unset(unset);
  const config = changes ? { ...(set.length ? { set } : {}), ...(unset.length ? { unset } : {}), ...(flags.reset ? { reset: true } : {}) } : undefined;
  return { key, order: { action, ...(module ? { module } : {}), ...(config ? { config } : {}) } };
}
