import { closeSync } from 'node:fs';
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import type { Logger } from '../core/log.js';
import { watchHandoffs } from './handoffs.js';

/**
 * The listening sockets the master holds for its workers (node:cluster's
 * round-robin handles), so that a master can hand them to its successor on
 * `graft upgrade` and the successor can serve on them without ever closing
 * the port.
 *
 * The master runs no app code, so the one net.Server.listen() call it sees
 * for a port is cluster's. Wrapping it lets the master (a) learn the handle
 * (fd) behind each listening socket and (b) on a successor, listen on the
 * inherited fd instead of binding the port again.
 */
interface NativeHandle {
  fd: number;
  close(): void;
  onconnection?: (err: number, client: unknown) => void;
}

/**
 * Takes a worker listener's accepted connections instead of node:cluster's
 * round-robin (`--sticky`): `client` is the accepted socket's native handle.
 */
export type Divert = (key: string, client: unknown) => void;

export interface InheritedListener {
  key: string;
  fd: number;
}

interface Held {
  key: string;
  handle: NativeHandle;
}

/** A listening socket no worker listens on for now: kept open, its connections held for the next. */
interface Parked extends Held {
  waiting: Array<{ close(): void }>;
}

/** Connections a parked socket holds at most; more are closed (a crash loop with no worker to take them). */
const MAX_WAITING = 1024;

/** The handle's own close, before the registry wrapped it. */
const closeOf = new WeakMap<NativeHandle, () => void>();

const own = new WeakSet<net.Server>();

/** The master's own servers (the control socket) are not worker listeners. */
export function markOwnServer(server: net.Server): void {
  own.add(server);
}

function keyOf(args: unknown[]): string | undefined {
  const first = args[0];
  if (typeof first === 'string') return `unix:${first}`;
  if (first && typeof first === 'object') {
    const o = first as { port?: unknown; host?: unknown; path?: unknown };
    if (typeof o.port === 'number' || typeof o.port === 'string') return `tcp:${o.host ?? '*'}:${o.port}`;
    if (typeof o.path === 'string') return `unix:${o.path}`;
  }
  return undefined;
}

export class ListenerRegistry {
  private readonly held: Held[] = [];
  /** The master's own listening servers a successor takes over too (metrics, the status page). */
  private readonly ownHeld: Held[] = [];
  private readonly inherited = new Map<string, InheritedListener & { claimed: boolean }>();
  /**
   * The TCP listeners node:cluster closed because their last worker left (a single worker that
   * crashed, a generation whose workers all died): kept open until a worker listens there again,
   * so that the port is never free for another process (or an outgoing connection's local port)
   * to take and no client is refused meanwhile. Closed for good by closeParked() or a stop.
   */
  private readonly parked = new Map<string, Parked>();
  private parking = true;
  /**
   * Told when a worker listener starts listening, and when one is closed for good: the keeper's
   * copy follows (it is let go of, so the port can be bound again).
   */
  onChange: ((change: { key: string; listening: boolean }) => void) | undefined;

  constructor(
    inherited: InheritedListener[] = [],
    private readonly log?: Logger,
  ) {
    for (const l of inherited) this.inherited.set(l.key, { ...l, claimed: false });
  }

  /** With a divert, every accepted connection of a worker listener goes to it instead of node:cluster's round-robin. */
  install(divert?: Divert): void {
    const registry = this;
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      if (own.has(this)) return (listen as (...a: unknown[]) => net.Server).apply(this, args);
      const key = keyOf(args);
      const inherited = key ? registry.inherited.get(key) : undefined;
      const parked = key ? registry.parked.get(key) : undefined;
      if (parked) {
        // The socket never closed: listening on its handle takes it up again, as for a server sent over IPC.
        registry.parked.delete(parked.key);
        args = [parked.handle];
      } else if (inherited && !inherited.claimed) {
        inherited.claimed = true;
        const backlog = (args[0] as { backlog?: number }).backlog;
        args = [{ fd: inherited.fd, ...(backlog ? { backlog } : {}) }];
      }
      // Registered before cluster's own 'listening' listener, which takes the handle away.
      this.once('listening', () => {
        const handle = (this as unknown as { _handle?: NativeHandle })._handle;
        if (key && handle && typeof handle.fd === 'number' && handle.fd >= 0) {
          registry.held.push({ key, handle });
          if (!closeOf.has(handle)) {
            closeOf.set(handle, handle.close.bind(handle));
            handle.close = () => registry.closed(key, handle);
          }
          process.nextTick(() => registry.onChange?.({ key, listening: true }));
          if (parked) registry.log?.info('a worker listens on the port again', { listener: key, waited: parked.waiting.length });
          // node:cluster sets the handle's onconnection (its round-robin) right after this listener, in
          // the same emit; taking it over on the next tick leaves it no connection. What the socket
          // accepted while no worker listened goes to the new ones.
          process.nextTick(() => {
            const roundRobin = handle.onconnection;
            handle.onconnection = (status, client) => {
              if (status < 0 || !client) return;
              if (divert) divert(key, client);
              else roundRobin?.(status, client);
            };
            for (const client of parked?.waiting.splice(0) ?? []) handle.onconnection(0, client);
          });
        }
      });
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof listen;
    const watch = (worker: Worker) => watchHandoffs(worker.process, (client) => registry.giveBack(client));
    // Workers forked before (the warm ones a standby master started while it waited) and every one from now on.
    for (const worker of Object.values(cluster.workers ?? {})) if (worker) watch(worker);
    cluster.on('fork', watch);
  }

  /**
   * A connection a worker died holding before it took it: to the listener that accepted it (its
   * round-robin, or its parked queue), found by the connection's local port; closed if none is left.
   */
  private giveBack(client: unknown): void {
    const c = client as { getsockname?(out: { address?: string; port?: number }): number; close(): void };
    const local: { address?: string; port?: number } = {};
    c.getsockname?.(local);
    const onPort = [...this.held, ...this.parked.values()].filter((h) => h.key.startsWith('tcp:') && h.key.endsWith(`:${local.port}`));
    const listener = onPort.find((h) => h.key === `tcp:${local.address}:${local.port}`) ?? onPort[0];
    if (!listener?.handle.onconnection) {
      c.close();
      return;
    }
    this.log?.info('a connection a dead worker never took goes to another', { listener: listener.key });
    listener.handle.onconnection(0, client);
  }

  /** node:cluster closed a worker listener: a TCP one is parked while the master runs, anything else closes. */
  private closed(key: string, handle: NativeHandle): void {
    const i = this.held.findIndex((h) => h.handle === handle);
    if (i >= 0) this.held.splice(i, 1);
    if (this.parking && key.startsWith('tcp:') && !this.parked.has(key)) {
      const parked: Parked = { key, handle, waiting: [] };
      handle.onconnection = (status, client) => {
        if (status < 0 || !client) return;
        const socket = client as { close(): void };
        if (parked.waiting.length < MAX_WAITING) parked.waiting.push(socket);
        else socket.close();
      };
      this.parked.set(key, parked);
      this.log?.info('no worker listens on a port now; it stays open and what it accepts waits for the next worker', { listener: key });
      return;
    }
    this.closeForGood(key, handle);
  }

  private closeForGood(key: string, handle: NativeHandle, waiting: Array<{ close(): void }> = []): void {
    for (const client of waiting) client.close();
    try {
      (closeOf.get(handle) ?? handle.close.bind(handle))();
    } catch {
      // already closed
    }
    this.onChange?.({ key, listening: false });
  }

  /**
   * Close the parked sockets: a generation went live without listening there (its code listens
   * elsewhere now). Returns their keys.
   */
  closeParked(): string[] {
    const keys = [...this.parked.keys()];
    for (const p of this.parked.values()) this.closeForGood(p.key, p.handle, p.waiting);
    this.parked.clear();
    return keys;
  }

  /** The service is stopping: a listener whose last worker leaves now closes, and parked ones close at once. */
  stopParking(): string[] {
    this.parking = false;
    return this.closeParked();
  }

  /** The sockets to pass to a successor: by fd to a child, by handle to a keeper over IPC (parked ones too: they are still open). */
  list(): Array<{ key: string; fd: number; handle: unknown }> {
    return [...this.held, ...this.parked.values(), ...this.ownHeld].filter((h) => h.handle.fd >= 0).map((h) => ({ key: h.key, fd: h.handle.fd, handle: h.handle }));
  }

  /** The inherited socket of one of the master's own servers, if the predecessor held one under this key. */
  claim(key: string): number | undefined {
    const inherited = this.inherited.get(key);
    if (!inherited || inherited.claimed) return undefined;
    inherited.claimed = true;
    return inherited.fd;
  }

  /** A listening server of the master's own, handed to a successor on upgrade (it closes it itself when it steps down). */
  handOver(key: string, server: net.Server): void {
    const handle = (server as unknown as { _handle?: NativeHandle })._handle;
    if (handle && typeof handle.fd === 'number' && handle.fd >= 0) this.ownHeld.push({ key, handle });
  }

  /** The master closed one of its own servers: nothing to hand over under that key any more. */
  release(key: string): void {
    const i = this.ownHeld.findIndex((h) => h.key === key);
    if (i >= 0) this.ownHeld.splice(i, 1);
  }

  /** Stop accepting in this process; a successor holding the same sockets keeps accepting. */
  stopAccepting(): void {
    this.parking = false;
    for (const h of this.held.splice(0)) h.handle.close();
    this.closeParked();
  }

  /** Close inherited sockets no worker asked for (the new code listens elsewhere). */
  closeUnclaimed(): string[] {
    const closed: string[] = [];
    for (const l of this.inherited.values()) {
      if (l.claimed) continue;
      l.claimed = true;
      try {
        closeSync(l.fd);
        closed.push(l.key);
      } catch {
        // not open
      }
    }
    return closed;
  }
}
