import http from 'node:http';
import https from 'node:https';
import type { Server, Socket } from 'node:net';
import { hasLingered, lingeringClose } from './lingering-close.js';

/**
 * Tracks one server's connections and requests, and drains it:
 * stop accepting without touching open connections, answer each further
 * request with `Connection: close`, close a connection only once it has been
 * idle for idleCloseMs, and close with a lingering close so a request already
 * on its way is never answered with a reset.
 *
 * http.Server#close() is not used: since Node 19 it destroys idle keep-alive
 * connections at once, racing the client's next request.
 */
interface ConnectionState {
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Handed to an 'upgrade' handler (a WebSocket): a lease of its own, never an idle keep-alive connection. */
  upgraded: boolean;
}

export interface DrainOptions {
  idleCloseMs: number;
  lingerMs: number;
}

export class HttpDrain {
  readonly isHttp: boolean;
  private readonly connections = new Map<Socket, ConnectionState>();
  private readonly responses = new Set<http.ServerResponse>();
  private servedCount = 0;
  private draining: DrainOptions | undefined;
  private onSettled: (() => void) | undefined;
  private lingerMs = 2000;

  constructor(readonly server: Server) {
    this.isHttp = server instanceof http.Server || server instanceof https.Server;
    server.on('connection', (socket: Socket) => this.track(socket));
    if (this.isHttp) this.interceptRequests();
  }

  get inFlight(): number {
    return this.responses.size;
  }

  get served(): number {
    return this.servedCount;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Stop accepting: net.Server's close, not http.Server's, so open connections are left alone. */
  stopAccepting(): void {
    // From here on the app's own server.close() (its SIGTERM handler, run right after this: Next.js's,
    // say) must not destroy idle keep-alive connections at once, racing the client's next request: graft closes them safely.
    if (this.isHttp) (this.server as http.Server).closeIdleConnections = () => {};
    if (!this.server.listening) return;
    const netClose = Object.getPrototypeOf(http.Server.prototype).close as Server['close'];
    netClose.call(this.server);
  }

  /** Resolves when every connection of this server is closed. */
  drain(options: DrainOptions): Promise<void> {
    this.draining = options;
    this.lingerMs = options.lingerMs;
    this.stopAccepting();
    for (const res of this.responses) closeAfter(res);
    for (const [socket, state] of this.connections) {
      if (state.upgraded) goAway(socket, options.idleCloseMs);
      else if (this.isHttp && state.active === 0) this.scheduleIdleClose(socket, state);
    }
    return new Promise((resolve) => {
      this.onSettled = resolve;
      this.checkSettled();
    });
  }

  private track(socket: Socket): void {
    const state: ConnectionState = { active: 0, idleTimer: undefined, upgraded: false };
    this.connections.set(socket, state);
    if (this.isHttp) {
      // Node closes a `Connection: close` response's socket with destroySoon();
      // make that a lingering close so a pipelined or racing request is not reset.
      (socket as Socket & { destroySoon: () => void }).destroySoon = () => lingeringClose(socket, this.lingerMs);
      if (this.draining) this.scheduleIdleClose(socket, state);
    }
    socket.once('close', () => {
      if (state.idleTimer) clearTimeout(state.idleTimer);
      this.connections.delete(socket);
      this.checkSettled();
    });
  }

  private interceptRequests(): void {
    const server = this.server;
    const emit = server.emit;
    const self = this;
    server.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'request') {
        const req = args[0] as http.IncomingMessage;
        const res = args[1] as http.ServerResponse;
        if (!self.beginRequest(req, res)) return true;
      } else if (event === 'upgrade') self.upgraded(args[1] as Socket);
      return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    } as Server['emit'];
  }

  /** Returns false when the request must not reach the app. */
  private beginRequest(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const socket = req.socket;
    if (hasLingered(socket)) {
      // We already sent FIN on this connection; the client will resend elsewhere.
      req.resume();
      return false;
    }
    const state = this.connections.get(socket);
    if (state) {
      state.active++;
      if (state.idleTimer) {
        clearTimeout(state.idleTimer);
        state.idleTimer = undefined;
      }
    }
    this.responses.add(res);
    if (this.draining) closeAfter(res);
    res.once('close', () => {
      this.responses.delete(res);
      this.servedCount++;
      if (state) {
        state.active--;
        if (this.draining && state.active === 0 && !socket.destroyed) this.scheduleIdleClose(socket, state);
      }
      this.checkSettled();
    });
    return true;
  }

  private upgraded(socket: Socket): void {
    const state = this.connections.get(socket);
    if (!state) return;
    state.upgraded = true;
    if (state.idleTimer) clearTimeout(state.idleTimer);
    state.idleTimer = undefined;
    if (this.draining) goAway(socket, this.draining.idleCloseMs);
  }

  private scheduleIdleClose(socket: Socket, state: ConnectionState): void {
    if (!this.draining || state.idleTimer || state.upgraded || hasLingered(socket)) return;
    const { idleCloseMs, lingerMs } = this.draining;
    state.idleTimer = setTimeout(() => {
      state.idleTimer = undefined;
      if (state.active === 0) lingeringClose(socket, lingerMs);
    }, idleCloseMs);
    state.idleTimer.unref();
  }

  private checkSettled(): void {
    if (this.onSettled && this.connections.size === 0) {
      const done = this.onSettled;
      this.onSettled = undefined;
      done();
    }
  }
}

/** Mark a response as the connection's last, unless its headers are already out. */
function closeAfter(res: http.ServerResponse): void {
  if (res.headersSent) return;
  res.shouldKeepAlive = false;
  res.setHeader('Connection', 'close');
}

/** What graft needs of a `ws` WebSocket (ws 8 keeps it on its socket under a symbol of this name). */
interface WebSocketLike {
  readyState: number;
  close(code: number, reason: string): void;
}

function webSocketOf(socket: Socket): WebSocketLike | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'websocket');
  const ws = key ? (socket as unknown as Record<symbol, unknown>)[key] : undefined;
  return ws && typeof (ws as WebSocketLike).close === 'function' ? (ws as WebSocketLike) : undefined;
}

/**
 * A WebSocket of a draining worker moves in its protocol's words: it reads
 * no further message (the client's next ones go to the new generation once
 * it reconnects), the app finishes answering what it already took (the
 * socket writes nothing for quietMs), then a close frame 1001 "going away"
 * follows what the app queued, and the closing handshake ends it. An
 * upgraded protocol graft does not speak is left to the app's drain hook
 * (its SIGTERM handler, ctx.signal) and, at the end, the drain timeout.
 */
function goAway(socket: Socket, quietMs: number): void {
  const ws = webSocketOf(socket);
  if (!ws || ws.readyState !== 1) return;
  socket.pause();
  let written = socket.bytesWritten;
  let quietSince = Date.now();
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    if (socket.bytesWritten !== written) {
      written = socket.bytesWritten;
      quietSince = Date.now();
      return;
    }
    if (Date.now() - quietSince < quietMs) return;
    clearInterval(timer);
    // Read again: the client's close frame answers ours.
    socket.resume();
    ws.close(1001, 'server going away');
  }, Math.max(10, Math.floor(quietMs / 5)));
  timer.unref();
}
