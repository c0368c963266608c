/**
 * Where swap orders come from. A trigger decides *when* code changes; the
 * master (or, without one, the process itself) decides what a change means:
 * an in-place swap, or a worker reload when a swap can't apply. The file
 * watcher and `graft swap` are triggers; a message bus (NATS, RabbitMQ, Redis)
 * is another, and must name only modules the service declared swappable.
 */
export interface SwapOrder {
  /** Swap only this module (a path or the name `graft status` shows). */
  module?: string;
  /** The files that changed, when the trigger knows them. */
  files?: string[];
  /** Who asked: `watch`, `control`, a bus subject… */
  source: string;
}

/** Two orders as one: every file of both; a module only if both name the same one. */
export function mergeOrders(a: SwapOrder, b: SwapOrder): SwapOrder {
  const files = a.files && b.files ? [...new Set([...a.files, ...b.files])] : undefined;
  const module = a.module && a.module === b.module ? a.module : undefined;
  return { source: a.source === b.source ? a.source : `${a.source},${b.source}`, ...(files ? { files } : {}), ...(module ? { module } : {}) };
}

export interface SwapTrigger {
  readonly name: string;
  /** Start delivering orders; returns a function that stops. */
  start(order: (o: SwapOrder) => Promise<unknown>): () => void | Promise<void>;
}

/** Files whose change no in-place swap can take: packages are shared, not reloaded. */
export function needsReload(files: string[]): string | undefined {
  return files.find((f) => /(^|[\\/])node_modules[\\/]/.test(f) || /(^|[\\/])(package\.json|package-lock\.json|pnpm-lock\.yaml|yarn\.lock)$/.test(f));
}
