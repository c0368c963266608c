import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Server, Socket } from 'node:net';
import { endEventStream, http1ContentType } from './event-stream-drain.js';
import { Http2Leases, isHttp2Server } from './h2-drain.js';
import { hasLingered, lingeringClose } from './lingering-close.js';
import { QuietWatch } from './quiet-watch.js';
import { goAway } from './websocket-drain.js';

/**
 * Tracks one server's connections and requests, and drains it:
 * stop accepting without touching open connections, answer each further
 * request with `Connection: close`, close a connection only once it has been
 * idle for idleCloseMs, and close with a lingering close so a request already
 * on its way is never answered with a reset. Leases that never end by
 * themselves are told to move: a WebSocket gets a close frame 1001, a
 * server-sent events response ends after an event, an HTTP/2 session a
 * graceful GOAWAY (h2-drain.ts).
 *
 * http.Server#close() is not used: since Node 19 it destroys idle keep-alive
 * connections at once, racing the client's next request.
 */
interface ConnectionState {
  socket: Socket;
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Handed to an 'upgrade' handler (a WebSocket): a lease of its own, never an idle keep-alive connection. */
  upgraded: boolean;
  /** A response on it was marked its last (`Connection: close`): a request pipelined behind it is not the app's. */
  last: boolean;
  /** The response to the latest request the app took on it, while in flight (pipelined ones are answered in order). */
  newest: http.ServerResponse | undefined;
  /** Told to go away (its WebSocket's 1001), or waiting for the app to make it a WebSocket first. */
  goingAway: 'told' | 'waiting' | undefined;
}

export interface DrainOptions {
  idleCloseMs: number;
  lingerMs: number;
  /** How long a gRPC call may go on streaming before it is told to end (half of --graceful-timeout). */
  callGraceMs: number;
}

export class HttpDrain {
  readonly isHttp: boolean;
  /** The sessions and streams of an HTTP/2 server (a gRPC server's too). */
  private readonly h2: Http2Leases | undefined;
  private readonly connections = new Map<Socket, ConnectionState>();
  /** The responses in flight, with their connection's state (none for a connection opened before graft tracked the server). */
  private readonly responses = new Map<http.ServerResponse, ConnectionState | undefined>();
  private servedCount = 0;
  private serverErrorCount = 0;
  private draining: DrainOptions | undefined;
  /** The drain's one timer for the leases it ends once they go quiet. */
  private quiet: QuietWatch | undefined;
  private onSettled: (() => void) | undefined;
  private lingerMs = 2000;
  /** Stopped accepting: each response is its connection's last. */
  private closing = false;
  /**
   * The one 'close' listener of every response (`this` is the response):
   * shared, so a request costs no closure of its own. With the request
   * interception below, graft's work on a request is a map entry set and
   * deleted, a few lookups and counters (bench:reload measured a closure per request
   * and a rest-and-spread emit at about 20 % more worker CPU per request than
   * bare node:cluster).
   */
  private readonly responseClosed: (this: http.ServerResponse) => void;

  constructor(readonly server: Server) {
    this.isHttp = server instanceof http.Server || server instanceof https.Server;
    const drain = this;
    this.responseClosed = function (this: http.ServerResponse) {
      drain.endRequest(this);
    };
    // Over TLS a request's socket is the TLSSocket, not the TCP socket 'connection' gives: track what requests run on.
    server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', (socket: Socket) => this.track(socket));
    if (this.isHttp) this.interceptRequests();
    this.h2 = isHttp2Server(server) ? new Http2Leases(server, () => this.checkSettled()) : undefined;
  }

  get inFlight(): number {
    return this.responses.size + (this.h2?.inFlight ?? 0);
  }

  /** Responses answered with a 5xx status (the health gate's error rate). */
  get serverErrors(): number {
    return this.serverErrorCount;
  }

  get served(): number {
    return this.servedCount + (this.h2?.served ?? 0);
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /**
   * Stop accepting: net.Server's close, not http.Server's, so open connections
   * are left alone. From here on every response is its connection's last
   * (`Connection: close`, for those whose headers are not out yet), so
   * keep-alive clients move to the new generation while the app's own
   * shutdown runs, before the drain proper. Of requests pipelined on one
   * connection and all taken by the app, the latest one's response is the
   * last: marking an earlier one would close the connection before the
   * others' answers, and their clients would send again what already ran.
   */
  stopAccepting(): void {
    this.closing = true;
    for (const [res, state] of this.responses) if (!state || state.newest === res) this.closeAfter(res, state);
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
    const quiet = (this.quiet = new QuietWatch(options.idleCloseMs));
    this.stopAccepting();
    for (const res of this.responses.keys()) this.retireResponse(res, quiet);
    for (const [socket, state] of this.connections) {
      if (state.upgraded) this.sendAway(socket, state, quiet);
      else if (this.isHttp && state.active === 0) this.scheduleIdleClose(socket, state);
    }
    this.h2?.drain(quiet, options.idleCloseMs, options.callGraceMs);
    return new Promise((resolve) => {
      this.onSettled = resolve;
      this.checkSettled();
    });
  }

  private track(socket: Socket): void {
    const state: ConnectionState = { socket, active: 0, idleTimer: undefined, upgraded: false, last: false, newest: undefined, goingAway: undefined };
    this.connections.set(socket, state);
    if (this.isHttp) {
      // Node closes a `Connection: close` response's socket with destroySoon();
      // make that a lingering close so a pipelined or racing request is not reset.
      (socket as Socket & { destroySoon: () => void }).destroySoon = () => lingeringClose(socket, this.lingerMs);
      this.scheduleIdleClose(socket, state);
    }
    socket.once('close', () => {
      clearTimeout(state.idleTimer);
      this.connections.delete(socket);
      this.checkSettled();
    });
  }

  private interceptRequests(): void {
    const server = this.server;
    const emit = server.emit;
    const self = this;
    // Every event of the server passes here: its arguments go on as they came (no rest array, no spread).
    server.emit = function (this: Server, event: string | symbol, first?: unknown, second?: unknown): boolean {
      if (event === 'request') {
        if (!self.beginRequest(first as http.IncomingMessage, second as http.ServerResponse)) return true;
      } else if (event === 'upgrade') {
        const socket = second as Socket;
        const state = self.upgraded(socket);
        const handled = Reflect.apply(emit, this, arguments) as boolean;
        // Upgraded during a drain (handed over under --sticky, or idle before its idle close): the app's handler has now run.
        if (state && self.quiet) self.sendAway(socket, state, self.quiet);
        return handled;
      }
      return Reflect.apply(emit, this, arguments) as boolean;
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
    if (state?.last && state.active > 0) {
      // Pipelined behind its connection's last response: Node parsed it already, but its answer could
      // never go out. The app does not run it (a POST is not carried out unanswered); the client,
      // reading our FIN, sends it again on a new connection.
      req.resume();
      return false;
    }
    if (state) {
      state.active++;
      state.newest = res;
      clearTimeout(state.idleTimer);
      state.idleTimer = undefined;
    }
    this.responses.set(res, state);
    if (this.closing) this.closeAfter(res, state);
    if (this.quiet) this.retireResponse(res, this.quiet);
    // A response emits 'close' once: the listener stays, no removal needed.
    res.on('close', this.responseClosed);
    return true;
  }

  /** A response is done (answered, or its connection gone). */
  private endRequest(res: http.ServerResponse): void {
    const state = this.responses.get(res);
    // Once per response, also if an app emits 'close' again.
    if (!this.responses.delete(res)) return;
    this.servedCount++;
    if (res.statusCode >= 500) this.serverErrorCount++;
    if (state) {
      state.active--;
      if (state.newest === res) state.newest = undefined;
      if (state.active === 0 && !state.socket.destroyed) this.scheduleIdleClose(state.socket, state);
    }
  }

  private upgraded(socket: Socket): ConnectionState | undefined {
    const state = this.connections.get(socket);
    if (!state) return undefined;
    state.upgraded = true;
    clearTimeout(state.idleTimer);
    state.idleTimer = undefined;
    return state;
  }

  /**
   * An upgraded connection of a draining worker: its WebSocket goes away
   * (websocket-drain.ts). An app may make it a WebSocket in a later turn (ws's
   * handleUpgrade after an asynchronous check): then it is told once ws
   * starts reading the socket, after the app's 'connection' handler.
   */
  private sendAway(socket: Socket, state: ConnectionState, quiet: QuietWatch): void {
    if (state.goingAway) return;
    if (goAway(socket, quiet)) {
      state.goingAway = 'told';
      return;
    }
    state.goingAway = 'waiting';
    const reading = (event: string | symbol) => {
      if (event !== 'data') return;
      socket.off('newListener', reading);
      queueMicrotask(() => {
        state.goingAway = undefined;
        if (!socket.destroyed) this.sendAway(socket, state, quiet);
      });
    };
    socket.on('newListener', reading);
  }

  /** A response of a draining worker (its connection's last since stopAccepting): an event stream ends after an event. */
  private retireResponse(res: http.ServerResponse, quiet: QuietWatch): void {
    endEventStream(res, () => http1ContentType(res), quiet);
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

  /** Mark a response as its connection's last, unless its headers are already out. */
  private closeAfter(res: http.ServerResponse, state: ConnectionState | undefined): void {
    if (res.headersSent) return;
    res.shouldKeepAlive = false;
    res.setHeader('Connection', 'close');
    if (state) state.last = true;
  }

  private checkSettled(): void {
    if (this.onSettled && this.connections.size === 0 && !this.h2?.openSessions) {
      const done = this.onSettled;
      this.onSettled = undefined;
      done();
    }
  }
}
