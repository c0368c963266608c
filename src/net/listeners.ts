import { closeSync } from 'node:fs';
import net from 'node:net';

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
   * Told when a worker listener starts listening, and when node:cluster closes one (its last
   * worker left, a crashed single worker say): the keeper's copy must follow, or the
   * replacement's bind finds the port taken.
   */
  onChange: ((change: { key: string; listening: boolean }) => void) | undefined;

  constructor(inherited: InheritedListener[] = []) {
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
      if (inherited && !inherited.claimed) {
        inherited.claimed = true;
        const backlog = (args[0] as { backlog?: number }).backlog;
        args = [{ fd: inherited.fd, ...(backlog ? { backlog } : {}) }];
      }
      // Registered before cluster's own 'listening' listener, which takes the handle away.
      this.once('listening', () => {
        const handle = (this as unknown as { _handle?: NativeHandle })._handle;
        if (key && handle && typeof handle.fd === 'number' && handle.fd >= 0) {
          registry.held.push({ key, handle });
          const close = handle.close.bind(handle);
          handle.close = () => {
            const i = registry.held.findIndex((h) => h.handle === handle);
            if (i >= 0) registry.held.splice(i, 1);
            close();
            registry.onChange?.({ key, listening: false });
          };
          process.nextTick(() => registry.onChange?.({ key, listening: true }));
          // node:cluster sets the handle's onconnection right after this listener, in the same
          // emit; replacing it on the next tick leaves no connection to its round-robin.
          if (divert) {
            process.nextTick(() => {
              handle.onconnection = (err, client) => {
                if (!err && client) divert(key, client);
              };
            });
          }
        }
      });
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof listen;
  }

  /** The sockets to pass to a successor: by fd to a child, by handle to a keeper over IPC. */
  list(): Array<{ key: string; fd: number; handle: unknown }> {
    return [...this.held, ...this.ownHeld].filter((h) => h.handle.fd >= 0).map((h) => ({ key: h.key, fd: h.handle.fd, handle: h.handle }));
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
    for (const h of this.held.splice(0)) {
      try {
        h.handle.close();
      } catch {
        // already closed
      }
    }
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
