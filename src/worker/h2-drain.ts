import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server } from 'node:net';
import { endEventStream } from './event-stream-drain.js';
import { endGrpcCall } from './grpc-call-drain.js';
import type { QuietWatch } from './quiet-watch.js';

/**
 * The leases of an HTTP/2 server (http2.createServer, createSecureServer,
 * and so every @grpc/grpc-js Server, which serves through them): its
 * sessions, and their streams (a request, a gRPC call), each in flight
 * while open and served once closed.
 *
 * Draining tells each session to move in HTTP/2's words, a graceful GOAWAY
 * (RFC 9113 §6.8): first a GOAWAY naming the highest stream id possible, so
 * the client opens no new stream here yet every stream it already sent is
 * still taken; then, after a PING round trip (by then those streams have
 * arrived), session.close(): the final GOAWAY names the last stream taken,
 * the streams in flight finish, and the session closes after the last one.
 * The client opens its next streams on a new connection, which the master
 * gives to the new generation.
 *
 * That holds while the session has a stream open. nghttp2 reads nothing
 * more from a session that sent a GOAWAY and has none open, so a stream on
 * its way would be refused: a session idle when the drain begins, or one
 * that comes in after (a connection the master handed over before our
 * close reached it), is told with its next stream (which finishes here), or
 * closed once it has stayed idle for idleCloseMs, as an idle HTTP/1.1
 * keep-alive connection is.
 *
 * A stream that never ends by itself is ended where graft speaks its
 * protocol: a server-sent events stream at its next event boundary. A gRPC
 * call gets what a grpc-js Server's own tryShutdown() gives it (GOAWAY,
 * calls in flight finish, no new ones), and one still streaming after the
 * call grace is told to end with status UNAVAILABLE after a whole message
 * (grpc-call-drain.ts); the app can end its calls sooner from its drain
 * hook (a SIGTERM handler that calls call.end()).
 */
export class Http2Leases {
  /** Each session, and how many of its streams are open. */
  private readonly sessions = new Map<ServerHttp2Session, SessionLeases>();
  private readonly streams = new Set<ServerHttp2Stream>();
  private servedCount = 0;
  private draining: { quiet: QuietWatch; idleCloseMs: number } | undefined;
  /** Set once the drain has gone on for the call grace: every gRPC call still open is told to end. */
  private callsTold = false;

  constructor(
    server: Server,
    /** Told when a session or stream closes. */
    private readonly changed: () => void,
  ) {
    server.on('session', (session: ServerHttp2Session) => this.trackSession(session));
    server.on('stream', (stream: ServerHttp2Stream) => this.trackStream(stream));
  }

  get inFlight(): number {
    return this.streams.size;
  }

  get served(): number {
    return this.servedCount;
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  /**
   * idleCloseMs bounds the wait for a client's PING answer, and for a late
   * session's first stream; callGraceMs is how long gRPC calls may go on
   * before they are told to end.
   */
  drain(quiet: QuietWatch, idleCloseMs: number, callGraceMs: number): void {
    this.draining = { quiet, idleCloseMs };
    for (const [session, leases] of this.sessions) {
      if (leases.open > 0) goAway(session, leases, idleCloseMs);
      else this.goAwayAtNextStream(session, leases, idleCloseMs);
    }
    for (const stream of this.streams) endStreamOfEvents(stream, quiet);
    const grace = setTimeout(() => {
      this.callsTold = true;
      for (const stream of this.streams) endGrpcCall(stream, quiet);
    }, callGraceMs);
    grace.unref();
  }

  private trackSession(session: ServerHttp2Session): void {
    const leases: SessionLeases = { open: 0, idle: undefined, opened: undefined };
    this.sessions.set(session, leases);
    session.once('close', () => {
      this.sessions.delete(session);
      this.changed();
    });
    if (this.draining) this.goAwayAtNextStream(session, leases, this.draining.idleCloseMs);
  }

  /** An idle session: GOAWAY with its next stream, or once it stayed idle for idleCloseMs. */
  private goAwayAtNextStream(session: ServerHttp2Session, leases: SessionLeases, idleCloseMs: number): void {
    const timer = setTimeout(() => leases.opened?.(), idleCloseMs);
    timer.unref();
    session.once('close', () => clearTimeout(timer));
    leases.opened = () => {
      clearTimeout(timer);
      leases.opened = undefined;
      goAway(session, leases, idleCloseMs);
    };
  }

  private trackStream(stream: ServerHttp2Stream): void {
    this.streams.add(stream);
    const leases = this.sessions.get(stream.session as ServerHttp2Session);
    if (leases) {
      leases.open++;
      leases.opened?.();
    }
    stream.once('close', () => {
      this.streams.delete(stream);
      this.servedCount++;
      if (leases && --leases.open === 0) leases.idle?.();
      this.changed();
    });
    if (this.draining) endStreamOfEvents(stream, this.draining.quiet);
    if (this.draining && this.callsTold) endGrpcCall(stream, this.draining.quiet);
  }
}

interface SessionLeases {
  /** Its streams open now. */
  open: number;
  /** Called when its last open stream closes. */
  idle: (() => void) | undefined;
  /** Called when a stream opens. */
  opened: (() => void) | undefined;
}

function endStreamOfEvents(stream: ServerHttp2Stream, quiet: QuietWatch): void {
  endEventStream(
    stream,
    () => {
      const type = stream.sentHeaders?.['content-type'];
      return type === undefined ? undefined : String(type);
    },
    quiet,
  );
}

/** The highest stream id HTTP/2 allows: GOAWAY's "no new streams, but every one you sent is taken". */
const ANY_STREAM = 2 ** 31 - 1;

/**
 * The final GOAWAY (session.close()) follows the first one once the PING
 * is answered, or once the session has no stream open: from then on
 * nghttp2 reads nothing from it, so neither the PING's answer nor the
 * client's own close would be seen (measured on Node 20: the session stayed
 * until pingBoundMs). A stream the client sent that was not read by then is
 * refused (REFUSED_STREAM: it never reached the app), and the client sends
 * it again on a new connection.
 */
function goAway(session: ServerHttp2Session, leases: SessionLeases, pingBoundMs: number): void {
  if (session.closed || session.destroyed) return;
  let timer: NodeJS.Timeout | undefined;
  const close = () => {
    clearTimeout(timer);
    leases.idle = undefined;
    // A no-op once the session is closed or destroyed.
    session.close();
  };
  try {
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, ANY_STREAM);
    if (leases.open === 0) return close();
    leases.idle = close;
    timer = setTimeout(close, pingBoundMs);
    timer.unref();
    if (!session.ping(close)) close();
  } catch {
    // Not connected yet, or too many pings unanswered: the final GOAWAY alone.
    close();
  }
}

let http2Prototypes: object[] | undefined;

/** An http2 server, plain or secure (their classes are not exported; their prototypes are found once). */
export function isHttp2Server(server: Server): boolean {
  http2Prototypes ??= [Object.getPrototypeOf(http2.createServer()) as object, Object.getPrototypeOf(http2.createSecureServer()) as object];
  return http2Prototypes.some((p) => Object.prototype.isPrototypeOf.call(p, server));
}
