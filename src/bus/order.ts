import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { stableStringify } from '../config/snapshot.js';
import { GraftError, type SerializedError } from '../core/errors.js';
import type { OrderKey } from './order-key.js';
import { OrderMemory } from './order-memory.js';

/**
 * An order that crosses the network: what a master is asked to do by a bus
 * message or a fleet rollout. It names an action, never a path to load: a swap
 * names a module the service declared swappable, and the master refuses any
 * other. Every order is signed; a timestamp and a one-time id make a replayed
 * order fail.
 */
export interface OrderBody {
  /** The service every master of the fleet runs (`--name`). */
  service: string;
  /** One host (`--host-id`), or `*` for every master of the service. */
  host: string;
  action: OrderAction;
  /** For `swap`: the module, by the name `graft status` shows. Omitted: every swappable module. */
  module?: string;
  /**
   * For `config`: changes to the top layer, as `graft config apply` takes them,
   * or `undo`: put the layer back as it was before the config order with that
   * id (a fleet rollback; the master kept what it was). Omitted: re-read the sources.
   */
  config?: { set?: string[]; unset?: string[]; reset?: boolean; undo?: string };
  /**
   * For `deploy`: the release, by its id only (the digest of its files; the
   * host fetches it from the fleet's Object Store and refuses files that do
   * not digest to it). For `rollback`: the release to go back to, or null for
   * the service's entry on disk (what a host ran before its first release).
   */
  release?: string | null;
  /** For `deploy`: the health gate's --min-healthy-time, in ms, instead of the host's own. */
  healthyMs?: number;
  /** One-time id: an order with an id already seen is refused. */
  id: string;
  /**
   * Who signed it (`user@machine` by default): a config order signed before
   * one already carried out from the same sender is refused, so a delayed
   * older change cannot undo a newer one.
   */
  from?: string;
  /** When it was signed (ms since the epoch). */
  at: number;
}

export type OrderAction = 'reload' | 'swap' | 'config' | 'deploy' | 'rollback';
const ACTIONS: readonly OrderAction[] = ['reload', 'swap', 'config', 'deploy', 'rollback'];

/** A release id as orders name it: the 32 hex digits (128 bits) of its files' digest, nothing that could be a path. */
export const RELEASE_ID = /^[0-9a-f]{32}$/;

/** The longest health gate: a day (a timer cannot wait much more than 24 days, and no gate needs that). */
export const MAX_HEALTHY_MS = 86_400_000;

export interface SignedOrder extends OrderBody {
  alg: OrderKey['alg'];
  /** base64 signature over `canonical(body)`. */
  sig: string;
}

/**
 * What a master publishes after it carried out (or refused) an order, signed
 * with its key when that key can sign (an HMAC secret, an Ed25519 private key).
 */
export interface OrderOutcome {
  id: string;
  service: string;
  host: string;
  action: OrderAction | 'unknown';
  ok: boolean;
  value?: unknown;
  error?: SerializedError;
  at: number;
  alg?: OrderKey['alg'];
  sig?: string;
  /** Set by the sender, never sent: a failure it cannot verify with its key (see verdict). */
  unverified?: string;
}

export function signOutcome(outcome: OrderOutcome, key: OrderKey): OrderOutcome {
  return key.canSign ? { ...outcome, alg: key.alg, sig: key.sign(canonicalOutcome(outcome)) } : outcome;
}

/**
 * What the sender of an order makes of an answer, checked with its own key:
 * - believed: signed with the fleet's key, or unsigned in an Ed25519 fleet,
 *   whose masters hold the public key and cannot sign (its answers rest on
 *   who may publish on the bus);
 * - unverified: a failure that is unsigned or signed with another key (a
 *   master refusing an order signed with another key answers with its own).
 *   Shown, but it never stands for the host's answer where a believed one
 *   comes, and nothing is retried on its word;
 * - forged: a success that is not signed with the fleet's key (in an HMAC
 *   fleet every master signs), or any answer with a signature of the right
 *   kind that does not match.
 */
export function verdict(outcome: OrderOutcome, key: OrderKey): { is: 'believed' } | { is: 'unverified' | 'forged'; why: string } {
  const signedHere = outcome.sig !== undefined && outcome.alg === key.alg && typeof outcome.sig === 'string' && key.verify(canonicalOutcome(outcome), outcome.sig);
  if (signedHere) return { is: 'believed' };
  if (outcome.sig === undefined && key.alg === 'ed25519') return { is: 'believed' };
  const why = outcome.sig === undefined ? 'it is not signed' : 'its signature does not match the fleet key';
  if (!outcome.ok) return { is: 'unverified', why };
  return { is: 'forged', why: outcome.sig === undefined ? `${why}, and every master of an HMAC fleet signs its answers` : why };
}

function canonicalOutcome(outcome: OrderOutcome): Buffer {
  const { alg: _alg, sig: _sig, ...rest } = outcome;
  return Buffer.from(stableStringify(rest));
}

/** A new order, stamped now with a fresh id. */
export function newOrder(fields: Omit<OrderBody, 'id' | 'at' | 'from'>, from = defaultSender()): OrderBody {
  return { ...fields, id: randomUUID(), at: Date.now(), from };
}

/** The sender an order names unless told otherwise: the signing user on this machine. */
export function defaultSender(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container's arbitrary uid)
  }
  return `${user}@${hostname()}`;
}

export function signOrder(body: OrderBody, key: OrderKey): SignedOrder {
  return { ...body, alg: key.alg, sig: key.sign(canonical(body)) };
}

/** The bytes a signature covers: the body's JSON with keys sorted at every level and no signature fields. */
export function canonical(body: OrderBody): Buffer {
  const { alg: _alg, sig: _sig, ...rest } = body as Partial<SignedOrder> & OrderBody;
  return Buffer.from(stableStringify(rest));
}

export interface OrderGuardOptions {
  service: string;
  host: string;
  key: OrderKey;
  /** How far an order's timestamp may be from this host's clock (default 30 s). */
  maxSkewMs?: number;
  /** Where the masters of this service keep their order memory (order-memory.ts); none: this guard's own. */
  memoryFile?: string;
}

/**
 * A master's check of every order it receives: well formed, for this service
 * and host, signed with the fleet's key, fresh, never seen before, and, for a
 * config order, not older than one its sender already had carried out. What it
 * remembers is kept for twice the allowed skew (an older order is refused for
 * its age) in the service's order memory, shared with every later master.
 */
export class OrderGuard {
  private readonly memory: OrderMemory;
  private readonly maxSkewMs: number;
  /** How the order memory was found at start: 'corrupt' is worth a warning. */
  readonly memoryAtStart: 'loaded' | 'none' | 'corrupt';

  constructor(private readonly options: OrderGuardOptions) {
    this.maxSkewMs = options.maxSkewMs ?? 30_000;
    this.memory = new OrderMemory(2 * this.maxSkewMs, options.memoryFile);
    this.memoryAtStart = this.memory.load();
  }

  /** The order, if it may be carried out; else throws GRAFT_ORDER_REFUSED saying why. */
  admit(message: unknown, now = Date.now()): OrderBody {
    const order = parseOrder(message);
    if (order.service !== this.options.service) refuse(`it is for service ${JSON.stringify(order.service)}, this master runs ${JSON.stringify(this.options.service)}`);
    if (order.host !== '*' && order.host !== this.options.host) refuse(`it is for host ${JSON.stringify(order.host)}, this is ${JSON.stringify(this.options.host)}`);
    if (order.alg !== this.options.key.alg) refuse(`it is signed with ${order.alg}; this master checks ${this.options.key.alg} signatures`);
    if (!this.options.key.verify(canonical(order), order.sig)) refuse('its signature does not match the fleet key');
    if (Math.abs(now - order.at) > this.maxSkewMs) {
      refuse(`it was signed ${Math.round((now - order.at) / 1000)} s from this host's clock (at most ${this.maxSkewMs / 1000} s allowed); check the clocks or send a new order`);
    }
    // Checked and recorded at once, against what every master of the service carried out (an upgrade's other half too).
    return this.memory.transaction(now, () => {
      if (this.memory.carriedOut(order.id)) refuse(`order ${order.id} was already carried out (a replay)`);
      const sender = order.from ?? '';
      const newer = order.action === 'config' ? this.memory.newestConfig(sender) : undefined;
      if (newer !== undefined && order.at < newer) {
        refuse(
          `a config order from ${JSON.stringify(sender)} signed ${((newer - order.at) / 1000).toFixed(1)} s after this one was already carried out; ` +
            'this older one would undo it (send a new order to change the config again)',
        );
      }
      this.memory.remember(order.id, now, configOf(order));
      const { alg: _alg, sig: _sig, ...body } = order;
      return body;
    });
  }

  /** An admitted order this master did not carry out after all (it was handing over): its successor may. */
  release(order: OrderBody): void {
    this.memory.release(order.id, configOf(order));
  }
}

function configOf(order: OrderBody): { sender: string; signedAt: number } | undefined {
  return order.action === 'config' ? { sender: order.from ?? '', signedAt: order.at } : undefined;
}

/** Checks the shape of a received order; the signature is checked by the guard. */
export function parseOrder(message: unknown): SignedOrder {
  let value = message;
  if (typeof message === 'string' || message instanceof Uint8Array) {
    try {
      value = JSON.parse(typeof message === 'string' ? message : Buffer.from(message).toString('utf8'));
    } catch {
      refuse('it is not JSON');
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) refuse('it is not a JSON object');
  const o = value as Record<string, unknown>;
  if (typeof o.sig !== 'string' || typeof o.alg !== 'string') refuse('it is not signed');
  for (const field of ['service', 'host', 'id'] as const) {
    if (typeof o[field] !== 'string' || (o[field] as string).length === 0) refuse(`its ${field} is missing`);
  }
  if (typeof o.at !== 'number' || !Number.isFinite(o.at)) refuse('its timestamp (at) is missing');
  if (!ACTIONS.includes(o.action as OrderAction)) refuse(`its action ${JSON.stringify(o.action)} is none of ${ACTIONS.join(', ')}`);
  if (o.from !== undefined && (typeof o.from !== 'string' || o.from.length === 0)) refuse('its sender (from) is not a name');
  if (o.module !== undefined && (typeof o.module !== 'string' || o.module.length === 0)) refuse('its module is not a name');
  if (o.module !== undefined && o.action !== 'swap') refuse('only a swap order names a module');
  if (o.config !== undefined) {
    const c = o.config as Record<string, unknown>;
    const strings = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((s) => typeof s === 'string'));
    if (o.action !== 'config' || !c || typeof c !== 'object' || !strings(c.set) || !strings(c.unset) || (c.reset !== undefined && typeof c.reset !== 'boolean') || (c.undo !== undefined && typeof c.undo !== 'string') || Object.keys(c).some((k) => !['set', 'unset', 'reset', 'undo'].includes(k))) {
      refuse('its config changes are malformed');
    }
  }
  if (o.action === 'deploy' && (typeof o.release !== 'string' || !RELEASE_ID.test(o.release))) refuse('a deploy order names its release by id (32 hex digits), and nothing else');
  if (o.action === 'rollback' && o.release !== null && (typeof o.release !== 'string' || !RELEASE_ID.test(o.release))) refuse('a rollback order names its release by id (32 hex digits), or null for the entry on disk');
  if (o.release !== undefined && o.action !== 'deploy' && o.action !== 'rollback') refuse('only a deploy or rollback order names a release');
  if (o.healthyMs !== undefined && (o.action !== 'deploy' || typeof o.healthyMs !== 'number' || !Number.isFinite(o.healthyMs) || o.healthyMs < 0 || o.healthyMs > MAX_HEALTHY_MS)) refuse('its healthyMs is not a deploy order\'s health gate time (0 to a day)');
  const known = new Set(['service', 'host', 'action', 'module', 'config', 'release', 'healthyMs', 'id', 'from', 'at', 'alg', 'sig']);
  const extra = Object.keys(o).find((k) => !known.has(k));
  if (extra) refuse(`it carries a field graft does not know (${JSON.stringify(extra)})`);
  return o as unknown as SignedOrder;
}

function refuse(why: string): never {
  throw new GraftError('GRAFT_ORDER_REFUSED', `order refused: ${why}`);
}
