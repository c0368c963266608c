import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { deferred } from '../../core/deferred.js';
import { GraftError, errorMessage } from '../../core/errors.js';
import type { ApolloNamespace, ApolloTarget } from '../../net/apollo-url.js';
import type { StoreAddress } from '../../net/source-url.js';
import { ApolloClient, ApolloHttpError, type Notification } from './apollo-client.js';
import { StoreSource, type KeyPlace, type StoreSourceOptions } from './store-source.js';

/** A long poll answered sooner than this with nothing new is not reissued at once (a server or proxy that does not hold). */
const MIN_HOLD_MS = 1000;

/** A namespace as last read in this process. */
interface Held {
  releaseKey: string;
  /** The last release message id seen (-1: none yet, the next poll answers at once with the server's). */
  notificationId: number;
  /** Its snapshot entries: `namespace:key` for a properties namespace, `namespace` (the document) for any other. */
  entries: Record<string, string>;
}

/**
 * An Apollo config service (`apollo://appId[:secretFile]@host:port/cluster/
 * namespace,…`), through its client HTTP protocol: each namespace read with
 * `/configs` (its releaseKey kept), then one long poll `/notifications/v2` for
 * all of them, re-reading the namespaces it names. Properties namespaces map
 * dotted keys to key paths; json and yaml namespaces are whole documents;
 * namespaces layer in the order given. Every connect re-reads each namespace
 * (an unchanged one answers 304), and so does a slow reconcile (every
 * `?reconcile=` seconds, 60 by default): a releaseKey that changed without a
 * notification, or a notification id that went backwards, makes the source
 * read everything again and start its ids over. A long poll a proxy cut after
 * holding it is simply reissued.
 */
export class ApolloSource extends StoreSource {
  private readonly target: ApolloTarget;
  private readonly reconcileMs: number;
  /** Each namespace's release, when the snapshot is this process's own read (empty while it is the cache file's). */
  private readonly held = new Map<string, Held>();

  constructor(address: StoreAddress, options: StoreSourceOptions) {
    super(address, options);
    this.target = address.apollo!;
    // parseStoreUrl refused anything but a positive number.
    this.reconcileMs = Number(address.params.get('reconcile') ?? 60) * 1000;
  }

  protected place(key: string): KeyPlace {
    const colon = key.indexOf(':');
    const namespace = this.namespace(colon < 0 ? key : key.slice(0, colon));
    if (!namespace) return undefined;
    if (namespace.format !== 'properties') return colon < 0 ? 'document' : undefined;
    return colon < 0 ? undefined : { path: key.slice(colon + 1).split('.') };
  }

  protected override partOf(key: string): number {
    const colon = key.indexOf(':');
    const name = colon < 0 ? key : key.slice(0, colon);
    return this.target.namespaces.findIndex((n) => n.name === name);
  }

  protected async session(signal: AbortSignal): Promise<void> {
    const client = new ApolloClient(this.target, this.secret(), this.address.params.get('ip'), signal);
    if (!this.current?.confirmed) this.held.clear();
    // One read at a time: the long poll's and the reconcile's.
    let reading: Promise<void> = Promise.resolve();
    const serial = (read: () => Promise<void>): Promise<void> => (reading = reading.then(read, read));
    const connection = deferred<never>();
    let timer: NodeJS.Timeout | undefined;
    try {
      await serial(() => this.readAll(client, this.held.size > 0 ? 'resume' : 'full'));
      this.connected({ namespaces: this.target.namespaces.map((n) => n.name) });
      timer = setInterval(() => void serial(() => this.reconcile(client)).catch((err: unknown) => connection.reject(err)), this.reconcileMs);
      await Promise.race([this.follow(client, signal, serial), connection.promise]);
    } finally {
      clearInterval(timer);
    }
  }

  /** The long poll, reissued until the session ends; each answer that names a newer release re-reads that namespace. */
  private async follow(client: ApolloClient, signal: AbortSignal, serial: (read: () => Promise<void>) => Promise<void>): Promise<void> {
    while (!signal.aborted) {
      const asked = Date.now();
      let answer: Notification[] | 'unchanged';
      try {
        answer = await client.notifications(this.target.namespaces.map((n) => ({ namespaceName: n.name, notificationId: this.held.get(n.name)?.notificationId ?? -1 })));
      } catch (err) {
        if (signal.aborted) return;
        const heldMs = Date.now() - asked;
        // A proxy that cuts the 60 s hold (apollo#1617, #3388, #4497) is no outage: the ids held make the next poll answer at once if a release came meanwhile.
        if (heldMs < MIN_HOLD_MS) throw err;
        this.log.debug('apollo long poll dropped; reissued', { heldMs, error: errorMessage(err) });
        continue;
      }
      const newer = answer === 'unchanged' ? [] : this.newer(answer);
      if (newer.length > 0) await serial(() => this.notified(client, newer));
      else if (Date.now() - asked < MIN_HOLD_MS) await sleep(MIN_HOLD_MS, undefined, { signal }).catch(() => {});
    }
  }

  /** The notifications about our namespaces whose id differs from the one held (a server may list others, or unchanged ones). */
  private newer(answer: Notification[]): Array<{ namespace: ApolloNamespace; notificationId: number }> {
    const out: Array<{ namespace: ApolloNamespace; notificationId: number }> = [];
    for (const namespace of this.target.namespaces) {
      // Apollo matches namespace names without regard to case.
      const n = answer.find((a) => a.namespaceName.toLowerCase() === namespace.name.toLowerCase());
      if (n && n.notificationId !== (this.held.get(namespace.name)?.notificationId ?? -1)) out.push({ namespace, notificationId: n.notificationId });
    }
    return out;
  }

  /** Re-read the namespaces a long poll named; an id that went backwards means the server's history is not ours: read everything. */
  private async notified(client: ApolloClient, newer: Array<{ namespace: ApolloNamespace; notificationId: number }>): Promise<void> {
    for (const { namespace, notificationId } of newer) {
      const before = this.held.get(namespace.name)?.notificationId ?? -1;
      if (notificationId < before) {
        this.gap(`the notification id of namespace ${namespace.name} went back from ${before} to ${notificationId} (the config service's database restored or replaced?)`, { namespace: namespace.name });
        return this.readAll(client, 'full');
      }
    }
    const changed: string[] = [];
    for (const { namespace, notificationId } of newer) {
      if (await this.read(client, namespace, 'resume', notificationId)) changed.push(namespace.name);
    }
    this.commit(changed);
  }

  /**
   * The slow reconcile: a namespace whose releaseKey changed with no
   * notification (a lost one) is a gap. A release published while this read
   * is on its way may be taken for one (its notification waits behind this
   * read): a needless full read, never a missed change.
   */
  private async reconcile(client: ApolloClient): Promise<void> {
    for (const namespace of this.target.namespaces) {
      const held = this.held.get(namespace.name);
      const release = await client.release(namespace.name, held?.releaseKey, held?.notificationId);
      if (release === 'unchanged' || release.releaseKey === held?.releaseKey) continue;
      this.gap(`the releaseKey of namespace ${namespace.name} changed without a notification`, { namespace: namespace.name, releaseKey: release.releaseKey, heldReleaseKey: held?.releaseKey });
      return this.readAll(client, 'full');
    }
  }

  /**
   * Every namespace: 'resume' asks with the releaseKey held (an unchanged one
   * answers 304); 'full' reads each anew and starts the notification ids over.
   */
  private async readAll(client: ApolloClient, mode: 'resume' | 'full'): Promise<void> {
    const changed: string[] = [];
    for (const namespace of this.target.namespaces) if (await this.read(client, namespace, mode)) changed.push(namespace.name);
    this.commit(changed);
  }

  /** One namespace into `held`; true when its content changed. */
  private async read(client: ApolloClient, namespace: ApolloNamespace, mode: 'resume' | 'full', notificationId?: number): Promise<boolean> {
    const held = mode === 'resume' ? this.held.get(namespace.name) : undefined;
    const id = notificationId ?? held?.notificationId ?? -1;
    const release = await client.release(namespace.name, held?.releaseKey, id);
    if (release === 'unchanged') {
      if (held) held.notificationId = id;
      return false;
    }
    const entries: Record<string, string> = {};
    if (namespace.format === 'properties') {
      for (const [key, value] of Object.entries(release.configurations)) entries[`${namespace.name}:${key}`] = value;
    } else {
      entries[namespace.name] = release.configurations.content ?? '';
    }
    const before = this.held.get(namespace.name);
    this.held.set(namespace.name, { releaseKey: release.releaseKey, notificationId: id, entries });
    return !before || JSON.stringify(before.entries) !== JSON.stringify(entries);
  }

  /** The namespaces held become the snapshot; a change is reported as coming from the namespaces that changed. */
  private commit(changed: string[]): void {
    const entries: Record<string, string> = {};
    const revision: string[] = [];
    for (const { name } of this.target.namespaces) {
      const held = this.held.get(name);
      if (!held) continue;
      Object.assign(entries, held.entries);
      revision.push(`${name}=${held.releaseKey}#${held.notificationId}`);
    }
    this.replace({ revision: revision.join(' '), entries }, changed.length > 0 ? this.nameOf(changed) : this.name);
  }

  /** The source's name narrowed to some of its namespaces: what a change or a rejection names. */
  private nameOf(namespaces: string[]): string {
    const { appId, cluster } = this.target;
    return `${this.address.scheme}://${appId}@${this.address.server}/${cluster}/${namespaces.join(',')}`;
  }

  private namespace(name: string): ApolloNamespace | undefined {
    return this.target.namespaces.find((n) => n.name === name);
  }

  /** The access key's secret, read at each connect (a rotated secret is used from the next one). */
  private secret(): string | undefined {
    const file = this.target.secretFile;
    if (file === undefined) return undefined;
    let secret: string;
    try {
      secret = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new GraftError('GRAFT_STORE_AUTH', `${this.name}: the access key secret file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
    }
    if (!secret) throw new GraftError('GRAFT_STORE_AUTH', `${this.name}: the access key secret file ${file} is empty`);
    return secret;
  }

  protected classify(err: unknown): GraftError {
    const { appId, cluster, secretFile } = this.target;
    if (err instanceof ApolloHttpError) {
      if (err.status === 404) {
        return new GraftError('GRAFT_STORE_NOT_FOUND', `${this.name}: the config service has no release of ${err.what} for app ${appId} in cluster ${cluster} (HTTP 404); check the app id, cluster and namespace names, and that the namespace is published`, { cause: err });
      }
      if (err.status === 401 || err.status === 403) {
        const fix = secretFile ? `the secret in ${secretFile} is not the app's access key secret (or this host's clock is more than a minute off)` : `app ${appId} has an access key: give the file holding its secret as apollo://${appId}:keyFile@…`;
        return new GraftError('GRAFT_STORE_AUTH', `${this.name}: the config service refused the request (HTTP ${err.status}); ${fix}`, { cause: err });
      }
      return new GraftError('GRAFT_STORE_UNREACHABLE', `${this.name}: ${err.message}`, { cause: err });
    }
    const name = (err as Error | undefined)?.name;
    const cause = (err as { cause?: unknown } | undefined)?.cause;
    const text = name === 'TimeoutError' ? 'the config service did not answer in time' : cause ? errorMessage(cause) : errorMessage(err);
    return new GraftError('GRAFT_STORE_UNREACHABLE', `${this.name}: ${text}`, { cause: err });
  }
}
