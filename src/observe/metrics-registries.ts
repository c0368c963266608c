/**
 * Registries an app hands to graft with collectMetrics(): collected in its
 * worker beside prom-client's default registry. Plain data only here: this
 * module is part of the public API and loads nothing.
 */

/** Anything with prom-client's getMetricsAsJSON(), from any copy of prom-client. */
export interface MetricsRegistry {
  getMetricsAsJSON(): Promise<unknown[]> | unknown[];
}

export const appRegistries = new Set<MetricsRegistry>();

/**
 * Have graft collect this registry too (with `graft start --metrics`): for a
 * registry other than the default one of the prom-client that resolves from
 * the entry's folder (an app's own `new Registry()`, or a second copy of
 * prom-client). Its samples get the worker and generation labels like the others.
 */
export function collectMetrics(registry: MetricsRegistry): void {
  appRegistries.add(registry);
}
