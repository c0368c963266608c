import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import { isNatsAuthError, natsConnect } from '../../net/nats-connect.js';
import { GraftError, errorMessage } from '../../core/errors.js';
import { StoreSource, type KeyPlace } from './store-source.js';

/**
 * A NATS JetStream KV bucket (`nats://host:port/bucket[/prefix]`). Keys are
 * dotted like key paths: with prefix `app`, key `app.db.pool` is `db.pool`,
 * and key `app` itself may hold a whole YAML or JSON document, below the
 * single keys. The revision is the bucket stream's sequence; a session
 * resumes its watch after it, unless the stream went backwards or was
 * recreated (then everything is read again). A bucket deleted under a live
 * watch is never reported by the watch itself (the client's ordered consumer
 * waits for its stream to come back): the bucket's status is checked every
 * `?reconcile=` seconds (5 by default), and a bucket gone or made again ends
 * the session, so that the next one reads it whole.
 */
export class NatsKvSource extends StoreSource {
  private get reconcileMs(): number {
    return Number(this.address.params.get('reconcile') ?? 5) * 1000;
  }

  private get prefix(): string {
    return this.address.path;
  }

  protected place(key: string): KeyPlace {
    if (!this.prefix) return { path: key.split('.') };
    if (key === this.prefix) return 'document';
    if (key.startsWith(`${this.prefix}.`)) return { path: key.slice(this.prefix.length + 1).split('.') };
    return undefined;
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const { bucket } = this.address;
    const nc = await natsConnect(this.address, `graft master ${process.pid}`, false, 3000);
    const stop = () => void nc.close().catch(() => {});
    signal.addEventListener('abort', stop);
    try {
      const kv = await new Kvm(nc).open(bucket);
      const info = (await kv.status()).streamInfo;
      const lastSeq = info.state.last_seq;
      const epoch = info.created;
      const held = this.current;
      let full = true;
      if (held?.confirmed) {
        const revision = Number(held.snapshot.revision);
        if (held.snapshot.epoch !== epoch) this.gap('the bucket was recreated', { bucket, storeRevision: String(lastSeq) });
        else if (lastSeq < revision) this.gap('the bucket went back to an earlier revision', { bucket, storeRevision: String(lastSeq) });
        // A purge, an expiry (max age) or history limits removed messages after ours: deletions may have left no marker.
        else if (info.state.first_seq > revision + 1) this.gap('messages after the held revision are gone from the bucket', { bucket, storeRevision: String(lastSeq) });
        else full = false;
      }
      // One ordered consumer reads the last value of every key and then follows changes.
      const watcher = await kv.watch({ key: '>', ...(full ? {} : { resumeFromRevision: Number(held!.snapshot.revision) + 1 }) });
      let reading: Record<string, string> | undefined;
      let revision = lastSeq;
      if (full) {
        if (info.state.messages === 0) this.replace({ revision: String(lastSeq), epoch, entries: {} });
        else reading = {};
      }
      if (!reading) this.connected({ resumed: !full, bucket });
      const follow = (async () => {
        for await (const e of watcher) {
          revision = Math.max(revision, e.revision);
          if (reading) {
            apply(reading, e);
            if (e.delta === 0) {
              this.replace({ revision: String(revision), epoch, entries: reading });
              reading = undefined;
              this.connected({ resumed: false, bucket });
            }
            continue;
          }
          this.update(String(e.revision), e.key, e.operation === 'PUT' ? e.string() : undefined);
        }
      })();
      const lost = nc.closed().then((err) => {
        throw err ?? new Error('the connection closed');
      });
      let timer: NodeJS.Timeout | undefined;
      const replaced = new Promise<never>((_, reject) => {
        timer = setInterval(() => {
          kv.status().then((now) => {
            if (now.streamInfo.created !== epoch) reject(new Error(`the bucket ${bucket} was deleted and made again`));
          }, reject);
        }, this.reconcileMs);
      });
      try {
        await Promise.race([follow, lost, replaced]);
      } finally {
        clearInterval(timer);
        watcher.stop();
      }
    } finally {
      signal.removeEventListener('abort', stop);
      stop();
    }
  }

  protected classify(err: unknown): GraftError {
    const text = errorMessage(err);
    const name = (err as Error | undefined)?.name ?? '';
    if (isNatsAuthError(err)) {
      return new GraftError('GRAFT_STORE_AUTH', `${this.name}: the NATS server refused the credentials (${text}); fix user:password in the URL`, { cause: err });
    }
    if (name === 'StreamNotFoundError' || /stream not found/i.test(text)) {
      return new GraftError('GRAFT_STORE_NOT_FOUND', `${this.name}: the KV bucket ${this.address.bucket} does not exist; create it (nats kv add ${this.address.bucket}) or fix the bucket name`, { cause: err });
    }
    if (/jetstream not enabled|JetStreamNotEnabled/i.test(`${name} ${text}`)) {
      return new GraftError('GRAFT_STORE_NOT_FOUND', `${this.name}: the NATS server has no JetStream; start it with -js`, { cause: err });
    }
    return new GraftError('GRAFT_STORE_UNREACHABLE', `${this.name}: ${text}`, { cause: err });
  }
}

function apply(entries: Record<string, string>, e: KvWatchEntry): void {
  if (e.operation === 'PUT') entries[e.key] = e.string();
  else delete entries[e.key];
}
