import { createHmac } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { join } from 'node:path';

/**
 * An Apollo config service for tests and bench/fleet: apollo-mock-server (the server the
 * ctrip-apollo client tests against) on a loopback port, with a short long-poll
 * hold. It serves Apollo's client protocol (`/configs`, `/notifications/v2`)
 * from one in-memory store per test process, published to through its
 * `superAdmin` as the portal would; the store outlives a stop, as a config
 * service's database does.
 *
 * What this helper adds in front of the mock, and why:
 * - stop() and start() on the same port, cutting open long polls (the mock's
 *   own close() leaves them held);
 * - each request recorded (path, query, headers), and Apollo's access key
 *   check (a 401 without a valid signature) for apps given one: the mock
 *   checks none;
 * - a `.json` namespace's notification id mirrored under its name without the
 *   suffix: the mock's long poll compares a `.json` namespace's id under that
 *   name (its own "TODO: about application.json"), so without the twin a poll
 *   for `datasources.json` never holds and answers at once, forever.
 * Known mock limit left as it is: when one long poll's hold ends, the mock
 * drops every other poll's wait on the same app and cluster
 * (`removeAllListeners`), so a publish right then reaches those clients only
 * when their own hold ends (they poll again and are answered at once):
 * a delay of at most one hold, never a lost change.
 *
 * apollo-mock-server is a devDependency; where this checkout's node_modules
 * lacks it, GRAFT_APOLLO_MOCK_PREFIX names an `npm install --prefix` folder
 * that has it.
 */

interface MockNamespace {
  _releaseKey: string | null;
  set(key: string, value: string): MockNamespace;
  delete(key: string): MockNamespace;
  publish(): MockNamespace;
  setNotificationId(id: number): MockNamespace;
  readonly configurations: Record<string, string>;
}
interface MockCluster {
  namespace(name: string): MockNamespace;
  setMaxListeners(n: number): void;
  readonly notifications: Array<{ namespaceName: string; notificationId: number }>;
}
interface MockModule {
  ConfigService: new (options: { pollingTimeout: number }) => { callback(): http.RequestListener };
  superAdmin: { app(appId: string): { cluster(name: string): MockCluster } };
}

function loadMock(): MockModule {
  try {
    return createRequire(import.meta.url)('apollo-mock-server') as MockModule;
  } catch (err) {
    const prefix = process.env.GRAFT_APOLLO_MOCK_PREFIX;
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !prefix) throw err;
    return createRequire(join(prefix, 'package.json'))('apollo-mock-server') as MockModule;
  }
}

const mock = loadMock();

export interface ApolloRequest {
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** The raw path and query, as signed. */
  url: string;
}

export class ApolloServer {
  port = 0;
  readonly requests: ApolloRequest[] = [];
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly secrets = new Map<string, string>();
  /** Long polls being held: since when, on which connection. */
  private readonly polls = new Map<http.ServerResponse, { appId: string | null; since: number; socket: Socket }>();

  constructor(private readonly pollingTimeoutMs = 1500) {}

  /** Listens (on the port it had, after a stop). */
  async start(): Promise<this> {
    const service = new mock.ConfigService({ pollingTimeout: this.pollingTimeoutMs }).callback();
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://apollo');
      this.requests.push({ path: url.pathname, query: url.searchParams, headers: req.headers, url: req.url ?? '/' });
      if (!this.signed(req, url)) {
        res.statusCode = 401;
        res.end();
        return;
      }
      if (url.pathname === '/notifications/v2') {
        this.polls.set(res, { appId: url.searchParams.get('appId'), since: Date.now(), socket: req.socket });
        res.once('close', () => this.polls.delete(res));
      }
      void service(req, res);
    });
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
    return this;
  }

  /** Stops listening and cuts every open connection (long polls included). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** `apollo://appId[:keyFile]@127.0.0.1:port/cluster/namespaces`, with query parameters if given. */
  url(appId: string, namespaces: string, options: { keyFile?: string; cluster?: string; query?: string } = {}): string {
    const user = options.keyFile ? `${appId}:${encodeURIComponent(options.keyFile)}` : appId;
    return `apollo://${user}@127.0.0.1:${this.port}/${options.cluster ?? 'default'}/${namespaces}${options.query ? `?${options.query}` : ''}`;
  }

  /** Replaces a namespace's content and releases it, as the portal's Publish does: properties as key → value, any other format as its text. */
  publish(appId: string, namespace: string, content: Record<string, string> | string, cluster = 'default'): void {
    const c = mock.superAdmin.app(appId).cluster(cluster);
    // The mock adds a listener per long poll and drops them only when a hold times out: many clients polling through many releases are not a leak to warn of.
    c.setMaxListeners(0);
    const ns = c.namespace(namespace);
    for (const key of Object.keys(ns.configurations)) ns.delete(key);
    for (const [key, value] of Object.entries(typeof content === 'string' ? { content } : content)) ns.set(key, value);
    ns.publish();
    if (/\.json$/i.test(namespace)) {
      const id = c.notifications.find((n) => n.namespaceName === namespace)!.notificationId;
      c.namespace(namespace.replace(/\.json$/i, '')).setNotificationId(id);
    }
  }

  /** How long the oldest long poll of the app held now has been held (0: none). */
  heldMs(appId: string): number {
    const since = Math.min(...[...this.polls.values()].filter((p) => p.appId === appId).map((p) => p.since));
    return Number.isFinite(since) ? Date.now() - since : 0;
  }

  /** Cuts the connections of the long polls held now, as a proxy that ends a hold early does; the server stays up. */
  cutPolls(appId: string): void {
    for (const p of this.polls.values()) if (p.appId === appId) p.socket.destroy();
  }

  /** A namespace's notification id set as given (lower: as a config service whose database was restored reports it), with no new release. */
  setNotificationId(appId: string, namespace: string, id: number, cluster = 'default'): void {
    mock.superAdmin.app(appId).cluster(cluster).namespace(namespace).setNotificationId(id);
  }

  /** A new release of a namespace whose notification is lost: its content and releaseKey change, no long poll hears of it (mock internals). */
  releaseSilently(appId: string, namespace: string, content: Record<string, string>, cluster = 'default'): void {
    const ns = mock.superAdmin.app(appId).cluster(cluster).namespace(namespace);
    for (const key of Object.keys(ns.configurations)) ns.delete(key);
    for (const [key, value] of Object.entries(content)) ns.set(key, value);
    ns._releaseKey = `silent-${Date.now()}`;
  }

  /** From now on, requests for `appId` need Apollo's access key signature with `secret`. */
  requireKey(appId: string, secret: string): void {
    this.secrets.set(appId, secret);
  }

  /** Apollo's check: `Authorization: Apollo appId:Base64(HMAC-SHA1(secret, Timestamp + "\n" + path?query))`, the timestamp within a minute. */
  private signed(req: http.IncomingMessage, url: URL): boolean {
    const appId = url.pathname.startsWith('/configs/') ? decodeURIComponent(url.pathname.split('/')[2] ?? '') : url.searchParams.get('appId');
    const secret = appId ? this.secrets.get(appId) : undefined;
    if (secret === undefined) return true;
    const timestamp = String(req.headers.timestamp ?? '');
    if (!(Math.abs(Date.now() - Number(timestamp)) < 60_000)) return false;
    const signature = createHmac('sha1', secret).update(`${timestamp}\n${req.url}`).digest('base64');
    return req.headers.authorization === `Apollo ${appId}:${signature}`;
  }
}

export const startApollo = (pollingTimeoutMs?: number) => new ApolloServer(pollingTimeoutMs).start();
