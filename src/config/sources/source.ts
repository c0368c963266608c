import type { ConnectionStatus } from '../../core/reconnect.js';

/**
 * A config source: one layer of the merged configuration. Files, the
 * environment and command-line overrides are sources; config centers (NATS KV,
 * etcd, Redis, Apollo) are store sources (store-source.ts).
 */
export interface ConfigSource {
  /** Names the layer in errors and history: `file:/etc/app.yaml`, `env`, `cli`, `etcd://10.0.0.5:2379/app`. */
  readonly name: string;
  /**
   * Read the layer now; throws a GraftError naming what is wrong and where.
   * A read only: whoever reads (a change, `graft config check`), the source
   * is as before, and only `committed` says what went live.
   */
  load(): Promise<Record<string, unknown>>;
  /** Call onChange when the layer may have changed; returns a function that stops watching. */
  watch?(onChange: (source: string) => void): () => void;
  /**
   * How long the loader waits after this source's last change event before it
   * re-reads (default: the loader's 50 ms, which folds an editor's several
   * events per save into one). A store's watch event is one change: 0.
   */
  readonly quietMs?: number;
  /** Where a source with a connection stands (shown by `graft status`). */
  status?(): SourceStatus;
  /** This layer, as one load() returned it, is live on every worker (a store caches what it was read from as its last good snapshot). */
  committed?(layer: Record<string, unknown>): void;
  /** Release connections and timers; the source is not used again. */
  close?(): Promise<void>;
}

/** A store source's connection, and the snapshot it holds. */
export type SourceStatus = ConnectionStatus & {
  /** The store's revision of the snapshot this source holds (etcd revision, NATS sequence, Redis content hash, Apollo `namespace=releaseKey#notificationId …`). */
  revision: string | undefined;
  /** The snapshot came from the cache file and the store has not confirmed it yet. */
  fromCache: boolean;
};
