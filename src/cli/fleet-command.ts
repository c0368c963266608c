import { newOrder, RELEASE_ID, signOrder, type OrderAction } from '../bus/order.js';
import { validName } from '../bus/names.js';
import { requestFromHost, unheard } from '../bus/nats-send.js';
import { GraftError, errorFields } from '../core/errors.js';
import { DEFAULT_SLOT_TTL_MS, FleetStore } from '../fleet/fleet-store.js';
import { parseFleetUrl } from '../net/fleet-url.js';
import { listHosts, registryKey, type HostRecord } from '../fleet/registration.js';
import { rollout, type RolloutEvent, type RolloutOrder, type RolloutReport } from '../fleet/rollout.js';
import { RolloutSlots } from '../fleet/rollout-semaphore.js';
import { parse, seconds } from './args.js';
import { orderFromFlags } from './order-body.js';

const common = {
  fleet: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const rolling = {
  ...common,
  'bus-key': { type: 'string' },
  'max-unavailable': { type: 'string' },
  'no-rollback': { type: 'boolean' },
  timeout: { type: 'string' },
  'slot-timeout': { type: 'string' },
} as const;

const configFlags = {
  set: { type: 'string', multiple: true },
  unset: { type: 'string', multiple: true },
  reset: { type: 'boolean' },
} as const;

/** `graft fleet status|reload|swap|config apply`: every master of a service, through the fleet's store. */
export async function fleetCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'status':
      return fleetStatus(rest);
    case 'reload':
      return fleetRollout('fleet reload', 'reload', rest);
    case 'swap':
      return fleetRollout('fleet swap', 'swap', rest);
    case 'deploy':
      return (await import('./fleet-deploy.js')).fleetDeploy(rest);
    case 'rollback':
      return fleetRollout('fleet rollback', 'rollback', rest);
    case 'config':
      if (rest[0] !== 'apply') throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft fleet config: the one action is `apply`, e.g. `graft fleet config apply --set db.pool=20`');
      return fleetRollout('fleet config apply', 'config', rest.slice(1));
    default:
      throw new GraftError('GRAFT_UNKNOWN_COMMAND', `graft fleet ${sub ? JSON.stringify(sub) : 'needs a command'}: expected status, reload, swap, config apply, deploy or rollback (see \`graft help fleet\`)`);
  }
}

function target(command: string, values: { fleet?: string | undefined; name?: string | undefined }): { url: string; service: string } {
  if (!values.fleet) throw new GraftError('GRAFT_BAD_ARGUMENT', `graft ${command} needs --fleet nats://host:port (the store the masters registered in)`);
  if (!values.name) throw new GraftError('GRAFT_BAD_ARGUMENT', `graft ${command} needs --name SERVICE (the --name the masters run with)`);
  return { url: values.fleet, service: validName('--name', values.name) };
}

async function fleetStatus(argv: string[]): Promise<number> {
  const { values } = parse('fleet status', argv, common, 0);
  const { url, service } = target('fleet status', values);
  const store = await FleetStore.open(parseFleetUrl(url));
  try {
    const hosts = await listHosts(await store.registry(), service);
    if (hosts.length === 0) throw new GraftError('GRAFT_FLEET_EMPTY', `no master of service ${service} is registered at ${store.address.display}; start them with --fleet ${store.address.display} --name ${service}`);
    if (values.json) console.log(JSON.stringify({ service, hosts, ...agreement(hosts) }, null, 2));
    else console.log(formatFleet(service, hosts));
    return hosts.every((h) => h.ready) ? 0 : 1;
  } finally {
    await store.close();
  }
}

/** Whether every host runs one config and one code version. */
export function agreement(hosts: HostRecord[]): { sameConfig: boolean; sameCode: boolean; ready: number } {
  const configs = new Set(hosts.map((h) => h.config?.hash));
  const codes = new Set(hosts.map((h) => h.code));
  return { sameConfig: configs.size <= 1, sameCode: codes.size <= 1, ready: hosts.filter((h) => h.ready).length };
}

function formatFleet(service: string, hosts: HostRecord[]): string {
  const rows = [['HOST', 'PID', 'PORT', 'STATE', 'READY', 'ORDERS', 'WORKERS', 'GEN', 'RELEASE', 'CODE', 'CONFIG', 'BUSY']];
  for (const h of hosts) {
    rows.push([
      h.host,
      String(h.pid),
      String(h.port),
      h.state,
      h.ready ? 'yes' : 'no',
      h.takesOrders === false ? 'NO' : 'yes',
      `${h.workers.ready}/${h.workers.desired}`,
      String(h.generation ?? '-'),
      h.release ?? '-',
      h.code ?? '-',
      h.config ? `v${h.config.version} ${h.config.hash.slice(0, 8)}` : '-',
      h.busy ?? '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
  const a = agreement(hosts);
  const configs = [...new Set(hosts.map((h) => h.config?.hash.slice(0, 8) ?? '-'))];
  const codes = [...new Set(hosts.map((h) => h.code ?? '-'))];
  const verdict = [
    `${a.ready} of ${hosts.length} hosts ready`,
    a.sameConfig ? 'one config on every host' : `configs differ (${configs.join(', ')})`,
    a.sameCode ? 'one code version on every host' : `code versions differ (${codes.join(', ')})`,
  ].join('; ');
  return `service ${service}\n${table}\n${verdict}`;
}

/** `graft fleet rollback <release>`: every host back to one release, by id. */
function rollbackOrder(id: string | undefined): RolloutOrder {
  if (id === undefined || !RELEASE_ID.test(id)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `graft fleet rollback needs the release to go back to, by its full id (32 hex digits, as graft fleet status shows it)${id === undefined ? '' : `; got ${JSON.stringify(id)}`}`);
  }
  return { action: 'rollback', release: id };
}

export async function fleetRollout(command: string, action: OrderAction, argv: string[], given?: { order: RolloutOrder; after?: (report: RolloutReport, store: FleetStore) => Promise<void> }): Promise<number> {
  const options = action === 'config' ? { ...rolling, ...configFlags } : rolling;
  const { values, positionals } = parse(command, argv, options as typeof rolling & typeof configFlags, action === 'swap' || action === 'rollback' ? 1 : 0);
  const { url, service } = target(command, values);
  const flags = orderFromFlags(command, action, action === 'swap' ? positionals[0] : undefined, values);
  const key = flags.key;
  const order = given?.order ?? (action === 'rollback' ? rollbackOrder(positionals[0]) : flags.order);
  const timeoutMs = seconds('--timeout', values.timeout) ?? 120_000;
  const slotTimeoutMs = seconds('--slot-timeout', values['slot-timeout']) ?? 600_000;
  const store = await FleetStore.open(parseFleetUrl(url));
  try {
    const registry = await store.registry();
    const hosts = await listHosts(registry, service);
    const maxUnavailable = parseMaxUnavailable(values['max-unavailable'], hosts.length);
    const slots = new RolloutSlots(await store.slots(), service, maxUnavailable, RolloutSlots.localHolder(), DEFAULT_SLOT_TTL_MS);
    const othersUntil = Date.now() + slotTimeoutMs;
    const report = await rollout(
      hosts,
      { service, order, maxUnavailable, rollback: values['no-rollback'] !== true },
      {
        acquire: () => slots.acquire(slotTimeoutMs),
        whileOthersRoll: async () => {
          if (Date.now() >= othersUntil || !(await slots.taken())) return undefined;
          await new Promise((r) => setTimeout(r, 100));
          return listHosts(registry, service);
        },
        send: async (host, o) => {
          const deadline = Date.now() + timeoutMs;
          let handingOver = false;
          for (let attempt = 1; ; attempt++) {
            const signed = signOrder(newOrder({ service, host, ...o }), key);
            let outcome;
            try {
              outcome = await requestFromHost(store.nc, signed, key, Math.max(1000, deadline - Date.now()), store.address.display);
            } catch (err) {
              // Between the handing-over master's last word and its successor's subscription, nobody listens.
              if (!handingOver || !unheard(err) || Date.now() > deadline) throw err;
              outcome = undefined;
            }
            // A master handing over to its successor (graft upgrade) refuses; the successor takes orders once in control.
            // Retried only on a master's own word: an unverified answer could be anyone's.
            if (outcome && (outcome.ok || outcome.unverified || outcome.error?.code !== 'GRAFT_STOPPING' || Date.now() > deadline)) return outcome;
            handingOver = true;
            await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)));
          }
        },
        waitReady: async (host, orderId) => {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const record = (await registry.get(registryKey(service, host)))?.json<HostRecord>();
            if (record?.ready && record.orders?.includes(orderId)) return record;
            if (Date.now() > deadline) throw new GraftError('GRAFT_FLEET_FAILED', `${host} answered the order but its registry entry did not show it carried out and ready again within ${timeoutMs / 1000} s`);
            await new Promise((r) => setTimeout(r, 100));
          }
        },
        progress: (event) => {
          if (!values.json) process.stderr.write(`${describe(event)}\n`);
        },
      },
    );
    // What comes after (the Object Store's retention) never hides the rollout's own outcome.
    await given?.after?.(report, store).catch((err: unknown) => process.stderr.write(`graft: warning: after the rollout: ${errorFields(err).error}\n`));
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else console.log(summary(report));
    if (!report.ok) {
      const failed = report.steps.find((s) => s.host === report.stoppedAt)?.error;
      process.stderr.write(`graft: GRAFT_FLEET_FAILED: the ${report.action} rollout stopped at ${report.stoppedAt}${failed ? ` (${failed.code}: ${failed.message})` : ''}\n`);
    }
    return report.ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

/** `N` hosts or `N%` of them (at least one). */
export function parseMaxUnavailable(value: string | undefined, hosts: number): number {
  if (value === undefined) return 1;
  const m = /^(\d+)(%?)$/.exec(value.trim());
  if (!m || Number(m[1]) < 1 || (m[2] && Number(m[1]) > 100)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `--max-unavailable must be a number of hosts (at least 1) or a percentage (1% to 100%), got ${JSON.stringify(value)}`);
  }
  return m[2] ? Math.max(1, Math.floor((hosts * Number(m[1])) / 100)) : Number(m[1]);
}

function describe(event: RolloutEvent): string {
  switch (event.event) {
    case 'batch':
      return `batch: ${event.hosts.join(', ')}`;
    case 'host-start':
      return `${event.host}: started (${event.slot})`;
    case 'host-done': {
      const s = event.step;
      const ms = Date.parse(s.endedAt) - Date.parse(s.startedAt);
      return s.ok ? `${s.host}: done in ${(ms / 1000).toFixed(1)} s` : `${s.host}: FAILED: ${s.error?.code}: ${s.error?.message}`;
    }
    case 'rollback':
      return event.skipped ? `${event.host}: not rolled back: ${event.skipped}` : `${event.host}: rolled back${event.ok ? '' : ` FAILED: ${event.error?.message}`}`;
  }
}

function summary(report: RolloutReport): string {
  const done = report.steps.filter((s) => s.ok).map((s) => s.host);
  if (report.ok) return `${report.action}: all ${done.length} hosts of ${report.service} done (at most ${report.batchSize} at a time)`;
  const back = report.rolledBack.filter((r) => r.ok).map((r) => r.host);
  // Hosts that took the change and were not put back: what the operator must know first.
  const ranAlready = (s: RolloutReport['steps'][number]) => (s.outcome?.value as { already?: boolean } | undefined)?.already === true;
  const changed = report.steps.filter((s) => (s.ok || s.outcome?.ok) && !ranAlready(s)).map((s) => s.host).filter((h) => !back.includes(h));
  const unknown = report.steps.filter((s) => s.unanswered).map((s) => s.host);
  return [
    `${report.action} stopped at ${report.stoppedAt}`,
    changed.length ? `changed and not rolled back: ${changed.join(', ')} (run the same command again to finish, or roll them back)` : undefined,
    unknown.length ? `sent the order but no answer came back: ${unknown.join(', ')} (it may have carried it out; graft fleet status shows what each host runs)` : undefined,
    report.notReached.length ? `not reached: ${report.notReached.join(', ')}` : undefined,
    back.length ? `rolled back: ${back.join(', ')}` : undefined,
  ]
    .filter(Boolean)
    .join('; ');
}
