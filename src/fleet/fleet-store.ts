import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isNatsAuthError, natsConnect } from '../net/nats-connect.js';
import { GraftError, errorMessage } from '../core/errors.js';
import type { FleetAddress } from '../net/fleet-url.js';

/** The registry bucket: one entry per master (`<service>.<host>`), gone when its heartbeats stop. */
export const REGISTRY_BUCKET = 'graft_fleet';
/** The rollout slots bucket: `<service>.slot.<n>` held by whoever changes a host now. */
export const SLOTS_BUCKET = 'graft_rollout';

export interface FleetStoreOptions {
  /** How long a registration lives without a heartbeat. */
  registryTtlMs?: number;
  /** How long a rollout slot lives without a refresh (an operator that died frees it after this). */
  slotTtlMs?: number;
  /** Reconnect forever (a master), or fail fast (a CLI). */
  reconnect?: boolean;
  name?: string;
}

export const DEFAULT_REGISTRY_TTL_MS = 15_000;
export const DEFAULT_SLOT_TTL_MS = 30_000;

/**
 * A connection to the fleet's store: NATS JetStream KV, with the registry and
 * rollout slot buckets created on first use (their TTL is the bucket's
 * max age: nats-server 2.9 has no per-key TTL).
 */
export class FleetStore {
  private constructor(
    readonly nc: NatsConnection,
    readonly address: FleetAddress,
    private readonly kvm: Kvm,
    private readonly options: FleetStoreOptions,
  ) {}

  static async open(address: FleetAddress, options: FleetStoreOptions = {}): Promise<FleetStore> {
    let nc: NatsConnection;
    try {
      nc = await natsConnect(address, options.name ?? 'graft', options.reconnect === true, 3000);
    } catch (err) {
      throw storeError(address, err);
    }
    return new FleetStore(nc, address, new Kvm(nc), options);
  }

  registry(): Promise<KV> {
    return this.bucket(REGISTRY_BUCKET, this.options.registryTtlMs ?? DEFAULT_REGISTRY_TTL_MS);
  }

  slots(): Promise<KV> {
    return this.bucket(SLOTS_BUCKET, this.options.slotTtlMs ?? DEFAULT_SLOT_TTL_MS);
  }

  private async bucket(name: string, ttl: number): Promise<KV> {
    try {
      return await this.kvm.create(name, { ttl, history: 1 });
    } catch (err) {
      // Created before with other limits (another TTL): use it as it is.
      try {
        return await this.kvm.open(name);
      } catch {
        throw storeError(this.address, err);
      }
    }
  }

  /** Never throws: a connection the server already closed is simply gone. */
  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close().catch(() => {}));
  }
}

export function storeError(address: FleetAddress, err: unknown): GraftError {
  const message = errorMessage(err);
  if (isNatsAuthError(err)) {
    return new GraftError('GRAFT_STORE_AUTH', `${address.display} refused graft's credentials (${message}); check the user and password in the URL`, { cause: err });
  }
  if (/jetstream not enabled|503/i.test(message)) {
    return new GraftError('GRAFT_STORE_UNREACHABLE', `${address.display} has no JetStream: start nats-server with -js (${message})`, { cause: err });
  }
  return new GraftError('GRAFT_STORE_UNREACHABLE', `${address.display} cannot be reached (${message}); is nats-server running there?`, { cause: err });
}
