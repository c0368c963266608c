/**
 * A config source: one layer of the merged configuration. Files, the
 * environment and command-line overrides are sources; config centers (NATS KV,
 * etcd, Redis, an Apollo-protocol server) plug in as further ones.
 */
export interface ConfigSource {
  /** Names the layer in errors and history: `file:/etc/app.yaml`, `env`, `cli`. */
  readonly name: string;
  /** Read the layer now; throws a GraftError naming what is wrong and where. */
  load(): Promise<Record<string, unknown>>;
  /** Call onChange when the layer may have changed; returns a function that stops watching. */
  watch?(onChange: (source: string) => void): () => void;
}
