import { GraftError, errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Command } from '../control/commands.js';
import { OrderGuard, parseOrder, signOutcome, type OrderBody, type OrderOutcome } from './order.js';
import type { OrderKey } from './order-key.js';

/** What the desk needs of the master. */
export interface OrderTarget {
  /** The master's arbiter: the outcome of the command, or its failure. */
  submit(command: Command): Promise<unknown>;
  /** The swappable modules the live workers report (the names `graft status` shows). */
  swappableModules(): string[];
}

export interface DeskOptions {
  service: string;
  host: string;
  key: OrderKey;
  /** The service's order memory, shared with the masters before and after this one (order-memory.ts). */
  memoryFile?: string;
}

/** Where an order came from: the transport, and whether it reached every host of the service (a fanout). */
export interface Arrival {
  transport: string;
  /** A fanout delivers orders addressed to other hosts too: those are skipped, not refused. */
  fanout: boolean;
}

/**
 * What every bus trigger shares: each received order is admitted by the
 * guard (signature, age, one-time id, service, host), checked against what
 * the service declared swappable, turned into a master command, and answered
 * with an outcome to publish. Refusals are logged with GRAFT_ORDER_REFUSED and
 * never reach a worker; an order never names a path to load.
 */
export class OrderDesk {
  private readonly guard: OrderGuard;

  constructor(
    private readonly options: DeskOptions,
    private readonly target: OrderTarget,
    private readonly log: Logger,
  ) {
    this.guard = new OrderGuard(options);
    if (this.guard.memoryAtStart === 'corrupt') {
      log.warn('the order memory is corrupt: starting with an empty one (an order replayed within a minute of its signing could be carried out again)', { file: options.memoryFile });
    }
  }

  /** The outcome to publish, or undefined when the order was for another host of a fanout (nothing to say). */
  async receive(raw: Uint8Array | string, arrival: Arrival): Promise<OrderOutcome | undefined> {
    // Parsed once here; a message that is not JSON stays as it came, and the guard refuses it.
    let message: unknown = raw;
    try {
      message = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
    } catch {
      // refused below
    }
    let order: OrderBody;
    try {
      if (arrival.fanout && this.forAnotherHost(message)) return undefined;
      order = this.guard.admit(message);
      this.checkModule(order);
    } catch (err) {
      return this.refused(message, arrival, err);
    }
    const command = toCommand(order);
    this.log.info('order received', { id: order.id, transport: arrival.transport, action: order.action, module: order.module, to: order.host });
    try {
      const value = await this.target.submit(command);
      this.log.info('order carried out', { id: order.id, transport: arrival.transport, action: order.action, ...summary(value) });
      return this.outcome(order, order.action, { ok: true, value });
    } catch (err) {
      const error = GraftError.wrap(err, `the ${order.action} order failed`);
      // Handing over (graft upgrade): over RabbitMQ the successor receives the same order, and must not take it for a replay.
      if (error.code === 'GRAFT_STOPPING') this.guard.release(order);
      this.log.error('order failed', { id: order.id, transport: arrival.transport, action: order.action, ...errorFields(error) });
      return this.outcome(order, order.action, { ok: false, error: error.toJSON() });
    }
  }

  private forAnotherHost(message: unknown): boolean {
    let host: unknown;
    try {
      host = parseOrder(message).host;
    } catch {
      return false; // malformed: refused (and published) by the guard
    }
    if (host === '*' || host === this.options.host) return false;
    this.log.debug('order for another host skipped', { host });
    return true;
  }

  /**
   * A swap names a module by the name the workers report (`graft status`),
   * or none (every swappable module). Anything that looks like a path, or a
   * name the service did not declare swappable, is refused here.
   */
  private checkModule(order: OrderBody): void {
    if (order.action !== 'swap' || order.module === undefined) return;
    const name = order.module;
    if (looksLikePath(name)) refuse(`module ${JSON.stringify(name)} looks like a path; an order names a swappable module as \`graft status\` shows it, and never makes a process load code from a path`);
    const declared = this.target.swappableModules();
    if (!declared.includes(name)) {
      refuse(`module ${JSON.stringify(name)} is not one this service declared swappable (${declared.map((d) => JSON.stringify(d)).join(', ') || 'none'})`);
    }
  }

  private refused(message: unknown, arrival: Arrival, err: unknown): OrderOutcome {
    const error = err instanceof GraftError ? err : new GraftError('GRAFT_ORDER_REFUSED', `order refused: ${(err as Error).message}`);
    const fields = loosely(message);
    this.log.warn('order refused', { code: 'GRAFT_ORDER_REFUSED', id: fields.id, transport: arrival.transport, action: fields.action, reason: error.message });
    return this.outcome(fields, fields.action ?? 'unknown', { ok: false, error: error.toJSON() });
  }

  private outcome(order: { id?: string }, action: OrderOutcome['action'], result: Pick<OrderOutcome, 'ok' | 'value' | 'error'>): OrderOutcome {
    return signOutcome({ id: order.id ?? '', service: this.options.service, host: this.options.host, action, ...result, at: Date.now() }, this.options.key);
  }
}

/** What the master does for an admitted order: the same commands the control socket sends. */
export function toCommand(order: OrderBody): Command {
  switch (order.action) {
    case 'reload':
      return { kind: 'reload', reason: 'bus', orders: [order.id] };
    case 'swap':
      return { kind: 'swap', order: { source: 'bus', ...(order.module ? { module: order.module } : {}) }, orders: [order.id] };
    case 'deploy':
      return { kind: 'deploy', release: order.release!, orders: [order.id], ...(order.healthyMs !== undefined ? { minHealthyMs: order.healthyMs } : {}) };
    case 'rollback':
      return { kind: 'rollback', orders: [order.id], ...(order.release === null ? { toDisk: true } : { id: order.release! }) };
    case 'config': {
      const c = order.config;
      const overrides = c && (c.set?.length || c.unset?.length || c.reset || c.undo);
      return {
        kind: 'config',
        source: c?.undo ? `bus (undo ${c.undo})` : 'bus',
        orders: [order.id],
        ...(overrides ? { overrides: { set: c.set ?? [], unset: c.unset ?? [], reset: c.reset === true, ...(c.undo ? { undo: c.undo } : {}) } } : {}),
      };
    }
  }
}

/** Absolute, relative with `.` or `..`, a URL or `~`, a backslash or a NUL: a path, not a module's name. */
export function looksLikePath(name: string): boolean {
  return (
    name.startsWith('/') ||
    name.startsWith('~') ||
    /^[A-Za-z]:/.test(name) ||
    /[\\\0:]/.test(name) ||
    name.split('/').some((segment) => segment === '.' || segment === '..' || segment === '')
  );
}

/** The generation, config version or module generations an outcome reports, for the log. */
function summary(value: unknown): Record<string, unknown> {
  if (!value || typeof value !== 'object') return {};
  const v = value as { generation?: number; version?: number; mode?: string; workers?: Array<{ modules?: Array<{ module: string; generation: number; unchanged?: boolean }> }> };
  const modules = v.workers?.[0]?.modules?.filter((m) => !m.unchanged).map((m) => `${m.module}@${m.generation}`);
  return {
    ...(v.generation !== undefined ? { generation: v.generation } : {}),
    ...(v.version !== undefined ? { configVersion: v.version } : {}),
    ...(v.mode !== undefined ? { mode: v.mode } : {}),
    ...(modules?.length ? { modules } : {}),
  };
}

/** The id and action of a message the guard refused, when it has them. */
function loosely(message: unknown): { id?: string; action?: OrderBody['action'] } {
  if (!message || typeof message !== 'object') return {};
  const o = message as Record<string, unknown>;
  return {
    ...(typeof o.id === 'string' ? { id: o.id } : {}),
    ...(['reload', 'swap', 'config', 'deploy', 'rollback'].includes(o.action as string) ? { action: o.action as OrderBody['action'] } : {}),
  };
}

function refuse(why: string): never {
  throw new GraftError('GRAFT_ORDER_REFUSED', `order refused: ${why}`);
}
