import net from 'node:net';
import { HttpDrain, type DrainOptions } from './http-drain.js';

/**
 * Finds the servers an app creates, without the app importing graft: every
 * net.Server (http, https, Express, Fastify, Koa, Hono) goes through
 * net.Server.prototype.listen, so the worker wraps it before loading the app.
 */
export interface ListenFailure {
  error: NodeJS.ErrnoException;
  /** True when the app has no 'error' listener of its own, so nobody handles it. */
  unhandled: boolean;
}

export class ServerRegistry {
  private readonly drains = new Map<net.Server, HttpDrain>();
  /** Where each server listened (kept after it stops accepting, when address() is null). */
  private readonly bound = new Map<net.Server, string | net.AddressInfo>();
  private listeningWaiters: Array<() => void> = [];
  private pendingListens = 0;

  private onListenError: (failure: ListenFailure) => void = () => {};
  /** Told when a server starts listening (a job worker that starts one after it was ready). */
  onListening: (() => void) | undefined;

  /** Wrap net.Server#listen before the app loads; a failed listen is reported to onListenError. */
  install(onListenError: (failure: ListenFailure) => void): void {
    this.onListenError = onListenError;
    const registry = this;
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      registry.track(this);
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof listen;
  }

  /** Adopt a server (a defineService start() result). Idempotent. */
  track(server: net.Server): void {
    if (this.drains.has(server)) return;
    this.drains.set(server, new HttpDrain(server));
    this.pendingListens++;
    const onListening = () => {
      server.off('error', onError);
      const address = server.address();
      if (address) this.bound.set(server, address);
      this.pendingListens--;
      this.wake();
      this.onListening?.();
    };
    const onError = (error: NodeJS.ErrnoException) => {
      // cluster workers see the primary's bind failure as syscall 'bind'
      if (error.syscall !== 'listen' && error.syscall !== 'bind') return;
      server.off('listening', onListening);
      this.pendingListens--;
      this.onListenError({ error, unhandled: server.listenerCount('error') === 1 });
    };
    server.once('listening', onListening);
    server.on('error', onError);
  }

  get servers(): net.Server[] {
    return [...this.drains.keys()];
  }

  /** True once some server listens and no listen() call is still pending. */
  get settledListening(): boolean {
    return this.pendingListens === 0 && this.servers.some((s) => s.listening);
  }

  /** Resolves when at least one server listens and every listen() call has completed. */
  whenListening(): Promise<void> {
    if (this.settledListening) return Promise.resolve();
    return new Promise((resolve) => this.listeningWaiters.push(resolve));
  }

  /** The server that listened under a master listener key (`tcp:HOST:PORT`, `unix:PATH`); the only one if there is one. */
  serverFor(key: string): net.Server | undefined {
    const port = key.startsWith('tcp:') ? Number(key.slice(key.lastIndexOf(':') + 1)) : undefined;
    const path = key.startsWith('unix:') ? key.slice(5) : undefined;
    for (const [server, a] of this.bound) if (typeof a === 'string' ? a === path : a.port === port) return server;
    return this.bound.size === 1 ? [...this.bound.keys()][0] : undefined;
  }

  addresses(): string[] {
    return this.servers.flatMap((s) => {
      const a = s.address();
      if (!a) return [];
      return [typeof a === 'string' ? a : `${a.address}:${a.port}`];
    });
  }

  stats(): { inFlight: number; served: number; serverErrors: number; connections: number } {
    let inFlight = 0;
    let served = 0;
    let serverErrors = 0;
    let connections = 0;
    for (const d of this.drains.values()) {
      inFlight += d.inFlight;
      served += d.served;
      serverErrors += d.serverErrors;
      connections += d.openConnections;
    }
    return { inFlight, served, serverErrors, connections };
  }

  /** Close every listener now (the master is told right after); connections drain afterwards. */
  stopAccepting(): void {
    for (const d of this.drains.values()) d.stopAccepting();
  }

  async drain(options: DrainOptions): Promise<void> {
    await Promise.all([...this.drains.values()].map((d) => d.drain(options)));
  }

  private wake(): void {
    if (!this.settledListening) return;
    const waiters = this.listeningWaiters;
    this.listeningWaiters = [];
    for (const w of waiters) w();
  }
}
