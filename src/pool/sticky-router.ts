import net from 'node:net';
import type { Logger } from '../core/log.js';
import type { WorkerProcess } from './worker-process.js';

/** The workers a connection may go to. */
export interface StickyWorkers {
  /** Ready workers of the live generation: where a new session goes. */
  liveWorkers(): WorkerProcess[];
  /** Every worker the master knows: a session stays with its worker while that worker is there. */
  allWorkers(): WorkerProcess[];
}

/** How long a connection may stay silent before it is routed by its address alone. */
const FIRST_BYTES_MS = 500;
/** How long a connection waits for a worker when none can take it (the first generation is still booting). */
const NO_WORKER_MS = 30_000;
/** Sessions and addresses remembered, oldest forgotten first. */
const REMEMBERED = 100_000;
/** What the master reads of a connection before it decides: a request line and its headers. */
const FIRST_BYTES = 16 * 1024;

/**
 * `--sticky`: the master takes each accepted connection from node:cluster,
 * reads its first bytes, and hands it to a worker (with those bytes) so that
 * one client's session stays on one worker, as Socket.IO's long polling needs:
 *
 * - a request carrying a Socket.IO / Engine.IO session id (`sid=` in its
 *   request line) goes to the worker that session went to, even while that
 *   worker drains (its WebSocket upgrade must reach the worker that holds the
 *   session), until the worker has drained;
 * - a session's first request with a sid goes where its client (the first
 *   X-Forwarded-For address, or the peer address) was last sent: the worker
 *   that answered its handshake;
 * - anything else goes to the client's worker while that worker is in the
 *   live generation, and otherwise (a new client, or one whose worker retired)
 *   to the next live worker in turn.
 */
export class StickyRouter {
  private readonly sessions = new Map<string, WorkerProcess>();
  private readonly clients = new Map<string, WorkerProcess>();
  private turn = 0;

  constructor(
    private readonly workers: () => StickyWorkers | undefined,
    private readonly log: Logger,
  ) {}

  /** Route one accepted connection (its native handle) of the listener `key`. */
  route(key: string, client: unknown): void {
    let head: Buffer | undefined;
    let timer: NodeJS.Timeout | undefined;
    let decided = false;
    // `handle` (the accepted native handle) and `onread` are options net.Socket takes but its types do not list.
    const socket = new net.Socket({
      handle: client,
      readable: true,
      writable: true,
      // A caller-owned buffer lets the read stop right after the first chunk (pause() stops the
      // native read at once), so every later byte stays in the kernel and goes with the socket.
      onread: {
        buffer: Buffer.alloc(FIRST_BYTES),
        callback: (size: number, buffer: Uint8Array) => {
          if (!decided) head = Buffer.from(buffer.subarray(0, size));
          decide();
          return false;
        },
      },
    } as net.SocketConstructorOpts);
    const decide = () => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      socket.off('close', gone);
      this.dispatch(key, socket, head, Date.now() + NO_WORKER_MS);
    };
    const gone = () => clearTimeout(timer);
    socket.on('error', () => {});
    socket.once('close', gone);
    timer = setTimeout(() => {
      socket.pause();
      decide();
    }, FIRST_BYTES_MS);
  }

  private dispatch(key: string, socket: net.Socket, head: Buffer | undefined, giveUpAt: number): void {
    if (socket.destroyed) return;
    const worker = this.choose(socket.remoteAddress, head);
    if (!worker) {
      if (Date.now() > giveUpAt) {
        this.log.warn('sticky: no worker could take a connection; closed it', { key });
        socket.destroy();
        return;
      }
      setTimeout(() => this.dispatch(key, socket, head, giveUpAt), 50).unref();
      return;
    }
    if (!worker.handOver(key, head, socket)) {
      // Gone between the choice and the send: choose again.
      setImmediate(() => this.dispatch(key, socket, head, giveUpAt));
    }
  }

  private choose(peer: string | undefined, head: Buffer | undefined): WorkerProcess | undefined {
    const pool = this.workers();
    if (!pool) return undefined;
    // A request line and headers, as text (a TLS ClientHello, 0x16, is routed by address alone).
    const request = head && head[0] !== 0x16 ? head.toString('latin1') : undefined;
    const client = (request && forwardedFor(request)) ?? peer ?? '';
    const sid = request ? sessionId(request) : undefined;
    if (sid) {
      const own = usable(this.sessions.get(sid)) ?? usable(this.clients.get(client));
      if (own) {
        remember(this.sessions, sid, own);
        return own;
      }
    }
    const live = pool.liveWorkers().filter((w) => w.listening);
    const pinned = this.clients.get(client);
    let worker = pinned && live.includes(pinned) ? pinned : undefined;
    if (!worker) {
      // Before the first generation commits (or with none ready) any listening worker will do.
      const candidates = live.length ? live : pool.allWorkers().filter((w) => usable(w) && w.state === 'ready');
      if (!candidates.length) return undefined;
      worker = candidates[this.turn++ % candidates.length]!;
    }
    remember(this.clients, client, worker);
    if (sid) remember(this.sessions, sid, worker);
    return worker;
  }
}

/** A worker a session may still reach: alive, listening, not yet drained. */
function usable(w: WorkerProcess | undefined): WorkerProcess | undefined {
  return w && w.alive && w.listening && !w.drained ? w : undefined;
}

function remember(map: Map<string, WorkerProcess>, key: string, worker: WorkerProcess): void {
  map.delete(key);
  map.set(key, worker);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value!);
}

/** The Engine.IO session id in a request line (`GET /socket.io/?EIO=4&transport=polling&sid=… HTTP/1.1`). */
export function sessionId(request: string): string | undefined {
  // In the request line only: it ends at the first line break, and the pattern cannot cross one.
  return /^[^\r\n]*?[?&]sid=([^&\s#]+)/.exec(request)?.[1];
}

/** The first address of an X-Forwarded-For header (before the blank line that ends the headers): the client behind a proxy. */
export function forwardedFor(request: string): string | undefined {
  const end = request.indexOf('\r\n\r\n');
  const match = /\r\nx-forwarded-for:[ \t]*([^,\r\n]+)/i.exec(end >= 0 ? request.slice(0, end) : request);
  return match?.[1]?.trim() || undefined;
}
