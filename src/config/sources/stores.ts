import type { Logger } from '../../core/log.js';
import type { StoreAddress } from '../../net/source-url.js';
import type { StoreSource, StoreSourceOptions } from './store-source.js';

/** Knobs for tests and impatient operators; the defaults suit production. */
function envMs(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

export function storeOptions(log: Logger, cacheDir: string): StoreSourceOptions {
  return {
    log,
    cacheDir,
    startTimeoutMs: envMs('GRAFT_STORE_START_TIMEOUT_MS', 5000),
    retryMaxMs: envMs('GRAFT_STORE_RETRY_MAX_MS', 5000),
  };
}

/** The source for a store address; each client library is loaded only when a store of its kind is used. */
export async function createStoreSource(address: StoreAddress, options: StoreSourceOptions): Promise<StoreSource> {
  switch (address.scheme) {
    case 'nats':
      return new (await import('./nats-kv-source.js')).NatsKvSource(address, options);
    case 'etcd':
      return new (await import('./etcd-source.js')).EtcdSource(address, options);
    case 'redis':
      return new (await import('./redis-source.js')).RedisSource(address, options);
    case 'apollo':
    case 'apollos':
      return new (await import('./apollo-source.js')).ApolloSource(address, options);
  }
}
