import { networkInterfaces } from 'node:os';
import type { ApolloTarget } from '../../net/apollo-url.js';
import { apolloAuthHeaders } from './apollo-sign.js';

/** How long a config read may take. */
const READ_TIMEOUT_MS = 10_000;
/** Above the 60 s a config service holds a long poll (Apollo's Java client waits 90 s). */
export const POLL_TIMEOUT_MS = 90_000;

/** A namespace's release as the config service serves it. */
export interface NamespaceRelease {
  releaseKey: string;
  /** Properties: key → value; any other format: `content` → the document. */
  configurations: Record<string, string>;
}

/** A namespace and the id of the last release message about it (-1: none seen yet). */
export interface Notification {
  namespaceName: string;
  notificationId: number;
}

/** An answer of the config service other than 200 or 304. */
export class ApolloHttpError extends Error {
  constructor(
    readonly status: number,
    readonly what: string,
  ) {
    super(`${what}: HTTP ${status}`);
  }
}

/**
 * Apollo's client HTTP protocol ("other language client" guide), over node's
 * fetch: a namespace's release (`/configs`) and the long poll
 * (`/notifications/v2`), each signed with the app's access key when it has
 * one. Every request ends with `signal` (the session's).
 */
export class ApolloClient {
  private readonly ip: string | undefined;

  constructor(
    private readonly target: ApolloTarget,
    private readonly secret: string | undefined,
    ip: string | null,
    private readonly signal: AbortSignal,
  ) {
    this.ip = ip ?? hostIp();
  }

  /**
   * GET /configs/{appId}/{cluster}/{namespace}: the namespace's release, or
   * 'unchanged' when it is still `releaseKey`. `messages` tells a config
   * service that caches releases which notification the client has seen, so
   * that it answers fresh.
   */
  async release(namespace: string, releaseKey: string | undefined, notificationId: number | undefined): Promise<NamespaceRelease | 'unchanged'> {
    const { appId, cluster } = this.target;
    const query = new URLSearchParams();
    if (releaseKey !== undefined) query.set('releaseKey', releaseKey);
    if (this.ip) query.set('ip', this.ip);
    if (notificationId !== undefined && notificationId >= 0) query.set('messages', JSON.stringify({ details: { [`${appId}+${cluster}+${namespace}`]: notificationId } }));
    const path = `/configs/${encodeURIComponent(appId)}/${encodeURIComponent(cluster)}/${encodeURIComponent(namespace)}`;
    const res = await this.get(path, query, READ_TIMEOUT_MS);
    if (res.status === 304) return 'unchanged';
    const what = `namespace ${namespace}`;
    if (res.status !== 200) throw await failed(res, what);
    const body = (await res.json().catch(() => undefined)) as Partial<NamespaceRelease> | undefined;
    if (!body || typeof body.releaseKey !== 'string' || typeof body.configurations !== 'object' || body.configurations === null) {
      throw new Error(`${what}: the config service answered with something that is not a release`);
    }
    return { releaseKey: body.releaseKey, configurations: stringValues(body.configurations) };
  }

  /**
   * GET /notifications/v2: held by the server until a release of one of the
   * namespaces is newer than the id given (200, those namespaces) or its hold
   * ends (304: 'unchanged').
   */
  async notifications(notifications: Notification[]): Promise<Notification[] | 'unchanged'> {
    const query = new URLSearchParams({ appId: this.target.appId, cluster: this.target.cluster, notifications: JSON.stringify(notifications) });
    if (this.ip) query.set('ip', this.ip);
    const res = await this.get('/notifications/v2', query, POLL_TIMEOUT_MS);
    if (res.status === 304) return 'unchanged';
    if (res.status !== 200) throw await failed(res, 'long poll');
    const body = (await res.json().catch(() => undefined)) as unknown;
    if (!Array.isArray(body)) throw new Error('long poll: the config service answered with something that is not a list of notifications');
    return body.filter((n): n is Notification => typeof n?.namespaceName === 'string' && typeof n?.notificationId === 'number');
  }

  private get(path: string, query: URLSearchParams, timeoutMs: number): Promise<Response> {
    const url = new URL(`${this.target.base}${path}?${query}`);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.secret !== undefined) Object.assign(headers, apolloAuthHeaders(this.target.appId, this.secret, url));
    return fetch(url, { headers, signal: AbortSignal.any([this.signal, AbortSignal.timeout(timeoutMs)]) });
  }
}

/** The error for an answer other than 200 or 304; the body is read so that the connection is free again. */
async function failed(res: Response, what: string): Promise<ApolloHttpError> {
  await res.arrayBuffer().catch(() => {});
  return new ApolloHttpError(res.status, what);
}

/** Apollo serves strings; anything else (a hand-written server) is turned into its text. */
function stringValues(configurations: object): Record<string, string> {
  return Object.fromEntries(Object.entries(configurations).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

/** The host's first external IPv4 address: what the config service matches gray releases against, as Apollo's clients send it. */
function hostIp(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
