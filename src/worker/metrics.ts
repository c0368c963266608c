/**
 * A worker's side of `--metrics`: prom-client's default process and Node
 * metrics, the app's own, as JSON for the master to merge.
 *
 * The registry collected is the default one of the prom-client an app gets
 * when it imports 'prom-client': resolved from the entry's folder, so that a
 * counter the app registers is in it. Only when the app has no prom-client of
 * its own does graft use its own copy (default metrics only).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { appRegistries } from '../observe/metrics-registries.js';
import { entry, log } from './runtime.js';

type PromClient = typeof import('prom-client');

let loading: Promise<PromClient> | undefined;

/** Where 'prom-client' resolves for the app: its own copy if it has one, else graft's. */
function promClientUrl(): string {
  try {
    if (entry) return pathToFileURL(createRequire(entry).resolve('prom-client')).href;
  } catch {
    // the app has no prom-client of its own
  }
  return 'prom-client';
}

/** Load prom-client (once) and start its default metrics, unless the app already did. */
export function startMetrics(): Promise<PromClient> {
  loading ??= (async () => {
    const url = promClientUrl();
    const mod = (await import(url)) as PromClient & { default?: PromClient };
    const client = mod.default ?? mod;
    // An app that called collectDefaultMetrics() itself keeps its own (a second call would throw).
    if (!client.register.getSingleMetric('process_cpu_user_seconds_total')) client.collectDefaultMetrics();
    log.debug('metrics: collecting', { promClient: url });
    return client;
  })();
  return loading;
}

/** Every sample of this worker: the default registry and the registries the app handed to collectMetrics(). */
export async function workerMetrics(): Promise<unknown[]> {
  const client = await startMetrics();
  const registries = [client.register, ...[...appRegistries].filter((r) => r !== client.register)];
  const sets = await Promise.all(registries.map((r) => r.getMetricsAsJSON()));
  return sets.flat();
}
