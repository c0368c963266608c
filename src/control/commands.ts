import { mergeOrders, type SwapOrder } from '../swap/trigger.js';

/**
 * Everything that changes a running service, whoever asks (a signal, the
 * control socket, a file watcher, a crashed worker): the master's arbiter
 * carries them out one at a time.
 */
export type Command =
  | { kind: 'reload'; reason: string; files?: string[]; orders?: string[] }
  | { kind: 'scale'; workers?: number; delta?: number }
  | { kind: 'config'; source: string; overrides?: Overrides; orders?: string[] }
  | { kind: 'swap'; order: SwapOrder; orders?: string[] }
  | { kind: 'upgrade' }
  /** A crashed worker's replacement, after its backoff; or a live worker over --max-memory, replaced by a fresh one before it drains. */
  | { kind: 'replace-worker'; reason: 'crash'; generation: number; index: number; restarts: number }
  | { kind: 'replace-worker'; reason: 'memory'; generation: number; index: number; pid: number; rss: number }
  | { kind: 'stop'; fast: boolean }
  /**
   * `graft deploy`: stage the directory or tarball as a release and move the
   * service onto it, then the health gate. From a fleet order: the release by
   * id, fetched from the fleet's Object Store unless this host has it.
   */
  | { kind: 'deploy'; source?: string; release?: string; minHealthyMs?: number; orders?: string[] }
  /** `graft rollback`: back to the named release, the newest good one before the live one, or (toDisk) the entry on disk. */
  | { kind: 'rollback'; id?: string; toDisk?: boolean; withConfig?: boolean; orders?: string[] };

/** `graft config apply --set/--unset/--reset`: changes to the top config layer. */
export interface Overrides {
  set?: string[];
  unset?: string[];
  reset?: boolean;
  /** Put the top layer back as it was before the bus order with this id changed it (a fleet rollback). */
  undo?: string;
}

/**
 * What a waiting command absorbs: reloads, re-reads of the config, swap orders
 * and upgrades bring the service to the newest wanted state, so one run serves
 * every asker. Scales, override changes and worker replacements each count.
 */
export function mergeCommands(waiting: Command, later: Command): Command | undefined {
  if (waiting.kind === 'reload' && later.kind === 'reload') {
    const files = waiting.files && later.files ? [...new Set([...waiting.files, ...later.files])] : undefined;
    return { kind: 'reload', reason: joinNames(waiting.reason, later.reason), ...(files ? { files } : {}), ...orderIds(waiting, later) };
  }
  if (waiting.kind === 'config' && later.kind === 'config' && !waiting.overrides && !later.overrides) {
    return { kind: 'config', source: joinNames(waiting.source, later.source), ...orderIds(waiting, later) };
  }
  if (waiting.kind === 'swap' && later.kind === 'swap') return { kind: 'swap', order: mergeOrders(waiting.order, later.order), ...orderIds(waiting, later) };
  if (waiting.kind === 'upgrade' && later.kind === 'upgrade') return waiting;
  return undefined;
}

/** The bus orders a merged command carries out: both commands' (each is answered, and recorded as carried out). */
function orderIds(a: { orders?: string[] }, b: { orders?: string[] }): { orders?: string[] } {
  const ids = [...(a.orders ?? []), ...(b.orders ?? [])];
  return ids.length ? { orders: ids } : {};
}

function joinNames(a: string, b: string): string {
  return [...new Set([...a.split(','), ...b.split(',')])].join(',');
}
