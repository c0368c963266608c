import http from 'node:http';
import net from 'node:net';
import { GraftError, errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { markOwnServer, type ListenerRegistry } from '../net/listeners.js';

/** Where one of the master's HTTP servers listens (`--metrics`, `--dashboard`). */
export interface HttpAddress {
  host: string;
  port: number;
  /** host:port as a user would type it back. */
  display: string;
}

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`; the host defaults to loopback, so nothing is exposed unless asked. */
export function parseHttpAddress(flag: string, value: string): HttpAddress {
  const bad = (why: string) => new GraftError('GRAFT_BAD_ARGUMENT', `${flag} ${JSON.stringify(value)}: ${why}; give a port (9100, on 127.0.0.1) or HOST:PORT (0.0.0.0:9100)`);
  const match = /^(?:\[([0-9a-fA-F:.]+)\]:|([A-Za-z0-9.-]+):)?(\d+)$/.exec(value.trim());
  if (!match) throw bad('not a port or HOST:PORT');
  const host = match[1] ?? match[2] ?? '127.0.0.1';
  if (match[1] !== undefined && net.isIPv6(host) === false) throw bad(`${host} is not an IPv6 address`);
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('the port must be from 1 to 65535');
  return { host, port, display: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/**
 * One of the master's own read-only HTTP servers (metrics, the status page).
 * It listens before any worker starts, so a port that is taken fails the
 * start with one line; on `graft upgrade` its socket goes to the successor
 * with the app's, so scrapes and open pages carry on at the same address.
 */
export class HttpEndpoint {
  private server: http.Server | undefined;
  private listeners: ListenerRegistry | undefined;

  constructor(
    readonly address: HttpAddress,
    /** The flags this address came from, for errors (`--metrics`, `--metrics and --dashboard`). */
    private readonly flags: string,
    private readonly routes: Record<string, Route>,
    private readonly log: Logger,
  ) {}

  private get key(): string {
    return `http:${this.address.display}`;
  }

  async listen(listeners: ListenerRegistry): Promise<void> {
    const server = http.createServer((req, res) => void this.serve(req, res));
    markOwnServer(server);
    const fd = listeners.claim(this.key);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const done = () => {
          server.off('error', reject);
          resolve();
        };
        if (fd !== undefined) server.listen({ fd }, done);
        else server.listen(this.address.port, this.address.host, done);
      });
    } catch (err) {
      throw this.listenError(err);
    }
    this.server = server;
    this.listeners = listeners;
    listeners.handOver(this.key, server);
  }

  /** Stop listening and end every open connection (a live page's event stream too: it reconnects, to a successor if there is one). */
  close(): void {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    this.listeners?.release(this.key);
    server.close();
    server.closeAllConnections();
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const route = this.routes[path];
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (!route) return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}; try ${Object.keys(this.routes).join(', ')}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('read-only\n');
    try {
      await route(req, res);
    } catch (err) {
      this.log.warn('http endpoint: a request failed', { path, ...errorFields(err) });
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`graft: ${err instanceof GraftError ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(err)}\n`);
    }
  }

  private listenError(err: unknown): GraftError {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${this.flags} ${this.address.display}`;
    if (code === 'EADDRINUSE') return new GraftError('GRAFT_METRICS_PORT_IN_USE', `${where}: port ${this.address.port} is already in use by another process; stop it or pick another port`);
    if (code === 'EACCES') return new GraftError('GRAFT_METRICS_PORT_IN_USE', `${where}: permission denied listening on port ${this.address.port}; use a port above 1023`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return new GraftError('GRAFT_BAD_ARGUMENT', `${where}: ${this.address.host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its interfaces`);
    }
    return GraftError.wrap(err, `${where}: cannot listen`);
  }
}
