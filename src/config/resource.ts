import { Coalescing } from '../core/queue.js';
import { Slot } from '../core/slot.js';
import { slotEventLogger } from '../core/slot-log.js';
import { createLogger } from '../core/log.js';
import { config as defaultStore, type Config, type ConfigStore } from './store.js';

export interface Resource<R> {
  /** Lease the current instance for the length of fn; it is not disposed while fn runs. */
  use<X>(fn: (instance: R) => X | Promise<X>): Promise<X>;
  /** Generation number of the current instance (undefined before the first build). */
  readonly version: number | undefined;
  /** Dispose the current instance once its leases are released; no rebuilds after. */
  close(): Promise<void>;
}

export interface ResourceOptions<C> {
  name?: string;
  /** How long a replaced instance may wait for its last lease (default 30 s). */
  drainTimeoutMs?: number;
  store?: ConfigStore<C>;
}

/**
 * A thing built from config (a DB pool, a client) held in a generation slot.
 * When a watched key changes a new instance is built beside the live one; new
 * leases get it; the old one is disposed after its last lease (bounded by the
 * drain timeout). A build that fails keeps the old instance and is reported.
 */
export function resource<R, C = Config>(
  keys: string[],
  build: (config: C) => R | Promise<R>,
  dispose?: (instance: R) => void | Promise<void>,
  options: ResourceOptions<C> = {},
): Resource<R> {
  const store = (options.store ?? defaultStore) as ConfigStore<C>;
  const name = options.name ?? `resource(${keys.join(',')})`;
  const log = createLogger({ role: process.env.GRAFT_ENTRY ? 'worker' : 'app', resource: name });
  const slot = new Slot<R>(
    {
      build: () => Promise.resolve(build(store.current)),
      dispose: (instance) => dispose?.(instance),
    },
    {
      name,
      drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
      onEvent: slotEventLogger(
        log,
        {
          commit: 'resource built',
          reject: 'resource build failed; the previous instance stays in use',
          dispose: 'resource instance disposed',
          disposeError: 'resource dispose failed',
        },
        () => ({ configVersion: store.loaded ? store.version : undefined }),
      ),
    },
  );
  // One build at a time; changes while one runs coalesce into one more build, from the config as it is then.
  const builds = new Coalescing(name, () => slot.replace());
  let first: Promise<unknown> | undefined;
  const ensure = (): Promise<unknown> => {
    first ??= builds.run().catch((err: unknown) => {
      first = undefined; // the next use() tries again
      throw err;
    });
    return first;
  };
  const unsubscribe = keys.map((key) =>
    store.on(key, () => {
      if (slot.current) void builds.run().catch(() => {});
    }),
  );
  return {
    async use(fn) {
      if (!slot.current) await ensure();
      return slot.use((instance) => fn(instance));
    },
    get version() {
      return slot.current?.version;
    },
    async close() {
      for (const u of unsubscribe) u();
      void builds.stop();
      await slot.close();
    },
  };
}
