import { Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import { GraftError, errorMessage } from '../../core/errors.js';
import { StoreSource, type KeyPlace } from './store-source.js';

/** graft's loop reconnects and decides when to read again: etcd3's own retries would hide an outage from it. */
const NO_RETRY = { execute: async <T>(fn: (ctx: { signal: AbortSignal }) => Promise<T> | T) => fn({ signal: new AbortController().signal }) } as never;

/**
 * etcd v3 (`etcd://host:port/prefix`): keys under `/prefix/`, `/` separating
 * path segments (`/app/db/pool` is `db.pool`); the key `/prefix` itself may
 * hold a whole YAML or JSON document, below the single keys. A session
 * resumes its watch at the snapshot's revision + 1; a cluster whose revision
 * went backwards (restarted empty) or a watch etcd cancels (compacted past
 * that revision) leads to a full read.
 */
export class EtcdSource extends StoreSource {
  private get prefix(): string {
    return this.address.path;
  }

  protected place(key: string): KeyPlace {
    if (key === this.prefix) return 'document';
    if (key.startsWith(`${this.prefix}/`)) return { path: key.slice(this.prefix.length + 1).split('/') };
    return undefined;
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const { server, user, password } = this.address;
    const client = new Etcd3({
      hosts: `http://${server}`,
      ...(user !== undefined ? { auth: { username: user, password: password ?? '' } } : {}),
      dialTimeout: 3000,
      faultHandling: { host: () => NO_RETRY, global: NO_RETRY },
    });
    const stop = () => client.close();
    signal.addEventListener('abort', stop);
    try {
      let mustRead = !this.current?.confirmed;
      for (;;) {
        let from: bigint;
        const held = this.current;
        if (!mustRead && held) {
          const probe = await client.get(this.prefix).exec();
          if (BigInt(probe.header.revision) < BigInt(held.snapshot.revision)) {
            this.gap('the cluster went back to an earlier revision (restarted empty?)', { storeRevision: probe.header.revision });
            mustRead = true;
          }
        }
        if (mustRead || !held) {
          const read = await client.getAll().prefix(this.prefix).exec();
          const entries: Record<string, string> = {};
          for (const kv of read.kvs) if (this.place(kv.key.toString()) !== undefined) entries[kv.key.toString()] = kv.value.toString();
          this.replace({ revision: read.header.revision, entries });
          this.connected({ resumed: false });
          from = BigInt(read.header.revision) + 1n;
        } else {
          this.connected({ resumed: true });
          from = BigInt(held.snapshot.revision) + 1n;
        }
        const cancelled = await this.follow(client, from, signal);
        this.gap(`etcd cancelled the watch from revision ${from} (compacted past it)`, { detail: cancelled });
        mustRead = true;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      stop();
    }
  }

  /** Follow changes from `from`; resolves when etcd cancels the watch, rejects when the connection is lost. */
  private follow(client: Etcd3, from: bigint, signal: AbortSignal): Promise<string> {
    const watcher: Watcher = client.watch().prefix(this.prefix).startRevision(from.toString()).watcher();
    return new Promise<string>((resolve, reject) => {
      watcher.on('data', (res: IWatchResponse) => {
        for (const ev of res.events) {
          const kv: IKeyValue = ev.kv;
          const key = kv.key.toString();
          if (this.place(key) === undefined) continue;
          this.update(kv.mod_revision, key, ev.type === 'Put' ? kv.value.toString() : undefined);
        }
      });
      watcher.on('disconnected', (err: Error) => reject(err));
      signal.addEventListener('abort', () => reject(new Error('closed')), { once: true });
      watcher.on('error', (err: Error) => resolve(errorMessage(err)));
    }).finally(() => void watcher.cancel().catch(() => {}));
  }

  protected classify(err: unknown): GraftError {
    const text = errorMessage(err);
    const name = (err as Error | undefined)?.name ?? '';
    if (/Authentication|Unauthenticated|InvalidAuthToken|PermissionDenied/i.test(name) || /authentication failed|invalid auth token|permission denied|user name is empty/i.test(text)) {
      return new GraftError('GRAFT_STORE_AUTH', `${this.name}: etcd refused the credentials (${text}); fix user:password in the URL`, { cause: err });
    }
    return new GraftError('GRAFT_STORE_UNREACHABLE', `${this.name}: ${text}`, { cause: err });
  }
}
