import { createClient } from 'redis';
import { deferred } from '../../core/deferred.js';
import { GraftError, errorMessage } from '../../core/errors.js';
import { bareHost } from '../../net/address.js';
import type { StoreAddress } from '../../net/source-url.js';
import { fingerprint, StoreSource, type KeyPlace, type StoreSourceOptions } from './store-source.js';

/** The entry a string key's document is held under (hash fields are key paths, never empty). */
const DOCUMENT = '';

/**
 * Redis (`redis://host:port/key`): the key is the truth — a string holding a
 * YAML or JSON document, or a hash whose fields are dotted key paths; a
 * missing key is an empty layer. A message on the channel (`<key>:changed`,
 * or `?channel=`) is only a hint to read the key again; since pub/sub loses
 * what is sent while disconnected, every connect reads the key, and so does
 * a slow reconcile (every `?reconcile=` seconds, 30 by default). Redis keeps
 * no revision: a snapshot's revision is its content hash.
 */
export class RedisSource extends StoreSource {
  private readonly channel: string;
  private readonly reconcileMs: number;

  constructor(address: StoreAddress, options: StoreSourceOptions) {
    super(address, options);
    this.channel = address.params.get('channel') ?? `${address.path}:changed`;
    // parseStoreUrl refused anything but a positive number.
    this.reconcileMs = Number(address.params.get('reconcile') ?? 30) * 1000;
  }

  protected place(key: string): KeyPlace {
    return key === DOCUMENT ? 'document' : { path: key.split('.') };
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const { host, port, user, password, path: key, params } = this.address;
    const database = Number(params.get('db') ?? 0);
    const client = createClient({
      socket: { host: bareHost(host), port, connectTimeout: 3000, reconnectStrategy: false },
      ...(user !== undefined ? { username: user } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(Number.isInteger(database) && database > 0 ? { database } : {}),
    });
    const subscriber = client.duplicate();
    const connection = deferred<never>();
    const lost = connection.promise;
    const fail = (err: unknown) => connection.reject(err);
    lost.catch(() => {}); // raced below; a failure before then must not go unhandled
    for (const c of [client, subscriber]) {
      c.on('error', (err: unknown) => fail(err));
      c.on('end', () => fail(new Error('the connection closed')));
    }
    const closed = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    let timer: NodeJS.Timeout | undefined;
    // One read at a time; hints that arrive during a read make one more.
    let busy: Promise<void> | undefined;
    let again = false;
    const reread = (): Promise<void> => {
      if (busy) {
        again = true;
        return busy;
      }
      busy = (async () => {
        do {
          again = false;
          const type = await client.type(key);
          const value = type === 'string' ? ((await client.get(key)) ?? '') : undefined;
          const fields = type === 'hash' ? await client.hGetAll(key) : undefined;
          this.read(key, type, value, fields);
        } while (again);
      })().finally(() => (busy = undefined));
      return busy;
    };
    try {
      await Promise.race([client.connect(), lost]);
      await Promise.race([subscriber.connect(), lost]);
      await Promise.race([subscriber.subscribe(this.channel, () => void reread().catch(fail)), lost]);
      await Promise.race([reread(), lost]);
      this.connected({ channel: this.channel });
      timer = setInterval(() => void reread().catch(fail), this.reconcileMs);
      await Promise.race([lost, closed]);
    } finally {
      clearInterval(timer);
      for (const c of [client, subscriber]) {
        try {
          c.destroy();
        } catch {
          // never connected
        }
      }
    }
  }

  private read(key: string, type: string, value: string | undefined, fields: Record<string, string> | undefined): void {
    let entries: Record<string, string> = {};
    let problem: string | undefined;
    if (value !== undefined) entries = { [DOCUMENT]: value };
    else if (fields !== undefined) entries = { ...fields };
    else if (type !== 'none') problem = `key ${key} holds a ${type}; graft reads a string (a YAML or JSON document) or a hash (fields are key paths)`;
    const snapshot = { revision: '', entries, ...(problem ? { problem } : {}) };
    snapshot.revision = fingerprint(snapshot);
    this.replace(snapshot);
  }

  protected classify(err: unknown): GraftError {
    const text = errorMessage(err);
    if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username-password/i.test(text)) {
      return new GraftError('GRAFT_STORE_AUTH', `${this.name}: Redis refused the credentials (${text}); fix user:password in the URL`, { cause: err });
    }
    return new GraftError('GRAFT_STORE_UNREACHABLE', `${this.name}: ${text || (err as Error)?.name || 'connection failed'}`, { cause: err });
  }
}
