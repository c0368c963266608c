import { GraftError, errorFields, type SerializedError } from '../core/errors.js';
import type { OrderBody, OrderOutcome } from '../bus/order.js';
import type { HostRecord } from './registration.js';
import type { HeldSlot } from './rollout-semaphore.js';

/** What a rollout asks of each host: an order without its address and stamp. */
export type RolloutOrder = Pick<OrderBody, 'action' | 'module' | 'config' | 'release' | 'healthyMs'>;

export interface RolloutPlan {
  service: string;
  order: RolloutOrder;
  /** Hosts that may change at once (already unready hosts count against it). */
  maxUnavailable: number;
  /** Roll back the hosts already changed when one fails. */
  rollback: boolean;
}

/** How a rollout reaches hosts and the store: the fleet command gives NATS, tests may give anything real. */
export interface RolloutDeps {
  /** Resolves with the host's own answer to this order (checked: same id, same host). */
  send(host: string, order: RolloutOrder): Promise<OrderOutcome>;
  /** Resolves once the registry shows the host carried out the order and is ready again (every worker up, no command running). */
  waitReady(host: string, orderId: string): Promise<HostRecord>;
  acquire(): Promise<HeldSlot>;
  progress(event: RolloutEvent): void;
  /**
   * While another operator's rollout holds a slot (the hosts it changes are unready for that while): the hosts
   * again after a moment; undefined when none holds one, or after --slot-timeout.
   */
  whileOthersRoll?(): Promise<HostRecord[] | undefined>;
}

export type RolloutEvent =
  | { event: 'batch'; hosts: string[] }
  | { event: 'host-start'; host: string; slot: string }
  | { event: 'host-done'; step: HostStep }
  | { event: 'rollback'; host: string; ok: boolean; error?: SerializedError; skipped?: string };

export interface HostStep {
  host: string;
  ok: boolean;
  startedAt: string;
  endedAt: string;
  slot?: string;
  outcome?: OrderOutcome;
  error?: SerializedError;
  /** What undoing this host's change takes, when graft can undo it. */
  undo?: RolloutOrder;
  /** The order went out but no answer came (the connection was lost): the host may have carried it out. */
  unanswered?: boolean;
  /** Why graft does not undo this host's change, when it does not. */
  undoSkipped?: string;
}

export interface RolloutReport {
  ok: boolean;
  service: string;
  action: RolloutOrder['action'];
  batchSize: number;
  steps: HostStep[];
  /** The host whose failure stopped the rollout. */
  stoppedAt?: string;
  rolledBack: Array<{ host: string; ok: boolean; error?: SerializedError; skipped?: string }>;
  notReached: string[];
}

/**
 * Host by host, or in batches of at most `maxUnavailable`: each host gets the
 * order, answers once its master carried it out, and must be ready again
 * before the next batch starts. The first failure stops the rollout; the
 * hosts already changed are rolled back (newest first) unless told not to.
 * Each host change holds a rollout slot in the store, so two operators
 * together never change more hosts at once than the limit.
 */
export async function rollout(hosts: HostRecord[], plan: RolloutPlan, deps: RolloutDeps): Promise<RolloutReport> {
  if (hosts.length === 0) throw new GraftError('GRAFT_FLEET_EMPTY', `no master of service ${plan.service} is registered; start them with --fleet and --name ${plan.service}`);
  const deaf = hosts.filter((h) => h.takesOrders === false).map((h) => h.host);
  if (deaf.length > 0) {
    throw new GraftError('GRAFT_FLEET_NO_ORDERS', `${deaf.join(', ')} take${deaf.length === 1 ? 's' : ''} no orders on the fleet's NATS server (started without --bus on it); nothing was changed: restart ${deaf.length === 1 ? 'it' : 'them'} with --bus <the --fleet URL> --bus-key FILE`);
  }
  let unready = hosts.filter((h) => !h.ready).map((h) => h.host);
  for (let again; plan.maxUnavailable - unready.length < 1 && (again = await deps.whileOthersRoll?.()); ) {
    hosts = again;
    unready = hosts.filter((h) => !h.ready).map((h) => h.host);
  }
  const batchSize = plan.maxUnavailable - unready.length;
  if (batchSize < 1) {
    throw new GraftError('GRAFT_FLEET_BUSY', `${unready.join(', ')} ${unready.length === 1 ? 'is' : 'are'} not ready, which uses up --max-unavailable ${plan.maxUnavailable}; wait for them or raise the limit`);
  }
  const report: RolloutReport = { ok: true, service: plan.service, action: plan.order.action, batchSize, steps: [], rolledBack: [], notReached: [] };
  const order = [...hosts.filter((h) => h.ready), ...hosts.filter((h) => !h.ready)].map((h) => h.host);
  for (let i = 0; i < order.length; i += batchSize) {
    const batch = order.slice(i, i + batchSize);
    deps.progress({ event: 'batch', hosts: batch });
    const steps = await Promise.all(batch.map((host) => changeHost(host, plan.order, deps)));
    report.steps.push(...steps);
    const failed = steps.find((s) => !s.ok);
    if (failed) {
      report.ok = false;
      report.stoppedAt = failed.host;
      report.notReached = order.slice(i + batchSize);
      if (plan.rollback) report.rolledBack = await rollBack(report.steps, deps);
      return report;
    }
  }
  return report;
}

async function changeHost(host: string, order: RolloutOrder, deps: RolloutDeps): Promise<HostStep> {
  const startedAt = new Date().toISOString();
  let slot: HeldSlot | undefined;
  let outcome: OrderOutcome | undefined;
  let sent = false;
  try {
    slot = await deps.acquire();
    deps.progress({ event: 'host-start', host, slot: slot.key });
    sent = true;
    outcome = await deps.send(host, order);
    if (!outcome.ok) throw outcome.error ? GraftError.from(outcome.error) : new GraftError('GRAFT_FLEET_FAILED', `${host} refused the order`);
    await deps.waitReady(host, outcome.id);
    const step: HostStep = { host, ok: true, startedAt, endedAt: new Date().toISOString(), slot: slot.key, outcome, ...undoOf(order, outcome) };
    deps.progress({ event: 'host-done', step });
    return step;
  } catch (err) {
    const { code, error } = errorFields(err);
    const step: HostStep = {
      host,
      ok: false,
      startedAt,
      endedAt: new Date().toISOString(),
      ...(slot ? { slot: slot.key } : {}),
      ...(outcome ? { outcome, ...undoOf(order, outcome) } : {}),
      ...(sent && !outcome ? { unanswered: true } : {}),
      error: { code: code ?? 'GRAFT_INTERNAL', message: error },
    };
    deps.progress({ event: 'host-done', step });
    return step;
  } finally {
    await slot?.release();
  }
}

/**
 * The order that undoes a host's change. Config overrides come back as they
 * were: the master kept them under the order's id, and `undo` names it. A
 * deploy goes back to the release the host ran before (its answer names it;
 * none: the entry on disk). A reload or a swap loaded files graft keeps no
 * copy of, so it cannot be undone by graft: deploy releases to have that.
 */
function undoOf(order: RolloutOrder, outcome: OrderOutcome): { undo?: RolloutOrder; undoSkipped?: string } {
  if (!outcome.ok) return {};
  if (order.action === 'deploy' || order.action === 'rollback') {
    const value = outcome.value as { previous?: string; already?: boolean } | undefined;
    if (value?.already) return { undoSkipped: 'it ran that release already: nothing of this rollout to undo' };
    return { undo: { action: 'rollback', release: value?.previous ?? null } };
  }
  if (order.action !== 'config' || !order.config) return { undoSkipped: 'graft cannot undo a reload or swap of the files on disk: deploy releases (graft fleet deploy) to roll code back' };
  return { undo: { action: 'config', config: { undo: outcome.id } } };
}

async function rollBack(steps: HostStep[], deps: RolloutDeps): Promise<RolloutReport['rolledBack']> {
  const done: RolloutReport['rolledBack'] = [];
  // A host that failed after it took the change (not ready again) is undone too; one that refused has nothing to undo.
  for (const step of [...steps].reverse().filter((s) => s.ok || s.outcome?.ok)) {
    if (!step.undo) {
      const skipped = step.undoSkipped ?? 'graft cannot undo this change';
      done.push({ host: step.host, ok: false, skipped });
      deps.progress({ event: 'rollback', host: step.host, ok: false, skipped });
      continue;
    }
    const back = await changeHost(step.host, step.undo, deps);
    done.push({ host: step.host, ok: back.ok, ...(back.error ? { error: back.error } : {}) });
    deps.progress({ event: 'rollback', host: step.host, ok: back.ok, ...(back.error ? { error: back.error } : {}) });
  }
  return done;
}
