import { parseBusUrl } from '../net/bus-url.js';
import { sendOverAmqp } from '../bus/amqp-send.js';
import { sendOverNats } from '../bus/nats-send.js';
import { newOrder, signOrder, type OrderAction, type OrderOutcome } from '../bus/order.js';
import { validName } from '../bus/names.js';
import { GraftError } from '../core/errors.js';
import { integer, parse, seconds } from './args.js';
import { orderFromFlags } from './order-body.js';

const ACTIONS: OrderAction[] = ['reload', 'swap', 'config'];

/** `graft order reload|swap [MODULE]|config [--set k=v]… --bus URL --bus-key FILE --name SERVICE [--host H|*]`. */
export async function order(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (!ACTIONS.includes(action as OrderAction)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `graft order needs an action: reload, swap [module] or config [--set K=V] (got ${JSON.stringify(action ?? '')})`);
  }
  const { values, positionals } = parse(
    `order ${action}`,
    rest,
    {
      bus: { type: 'string' },
      'bus-key': { type: 'string' },
      name: { type: 'string' },
      host: { type: 'string' },
      timeout: { type: 'string' },
      expect: { type: 'string' },
      set: { type: 'string', multiple: true },
      unset: { type: 'string', multiple: true },
      reset: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    action === 'swap' ? 1 : 0,
  );
  if (!values.bus) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft order needs --bus nats://host:4222 or --bus amqp://user:pass@host:5672');
  if (!values.name) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft order needs --name SERVICE: the service the masters were started with (--name)');
  const bus = parseBusUrl(values.bus);
  const { key, order } = orderFromFlags(`order ${action}`, action as OrderAction, positionals[0], values);
  const service = validName('--name', values.name);
  const host = values.host ?? '*';
  if (host !== '*') validName('--host', host);
  const signed = signOrder(newOrder({ service, host, ...order }), key);
  const timeoutMs = seconds('--timeout', values.timeout) ?? 15_000;
  const send = bus.scheme === 'nats' ? sendOverNats : sendOverAmqp;
  const outcomes = await send(bus, signed, {
    key,
    timeoutMs,
    onDisbelieved: (o, why) => console.error(`graft: GRAFT_ORDER_FORGED: an answer naming host ${JSON.stringify(o.host)} to order ${signed.id} is not believed (${why}); ignored`),
    expect: integer('--expect', values.expect, 1, 100_000),
    onOutcome: (o) => {
      if (!values.json) console.log(describe(o));
    },
  });
  if (values.json) console.log(JSON.stringify(outcomes, null, 2));
  if (outcomes.length === 0) {
    throw new GraftError('GRAFT_ORDER_TIMEOUT', `no master of service ${signed.service} answered order ${signed.id} within ${timeoutMs / 1000} s on ${bus.display}`);
  }
  const failed = outcomes.filter((o) => !o.ok);
  for (const f of failed) console.error(`graft: ${f.error?.code ?? 'GRAFT_INTERNAL'}: host ${f.host}: ${f.error?.message ?? 'failed'}${f.unverified ? ` (unverified: ${f.unverified})` : ''}`);
  return failed.length > 0 ? 1 : 0;
}

/** One host's outcome, one line. */
function describe(o: OrderOutcome): string {
  if (!o.ok) return `${o.host}: FAILED ${o.action}: ${o.error?.code ?? ''} ${o.error?.message ?? ''}`.trimEnd() + (o.unverified ? ` (unverified: ${o.unverified})` : '');
  const v = (o.value ?? {}) as { generation?: number; version?: number; mode?: string; reason?: string; workers?: Array<{ modules?: Array<{ module: string; generation: number; unchanged?: boolean }> }> };
  switch (o.action) {
    case 'reload':
      return `${o.host}: reloaded: generation ${v.generation} serves`;
    case 'config':
      return `${o.host}: config version ${v.version} (${v.mode})`;
    case 'swap': {
      if (v.mode === 'reload') return `${o.host}: swap fell back to a reload (${v.reason}): generation ${v.generation} serves`;
      const modules = [...new Set((v.workers ?? []).flatMap((w) => (w.modules ?? []).map((m) => `${m.module}@${m.generation}`)))];
      return `${o.host}: ${v.mode === 'unchanged' ? 'nothing to swap' : 'swapped in place'}: ${modules.join(', ') || '-'} in ${v.workers?.length ?? 0} worker(s)`;
    }
    default:
      return `${o.host}: ok`;
  }
}
