import type { ServerHttp2Stream } from 'node:http2';
import type { QuietWatch } from './quiet-watch.js';
import { endAtBoundary, type BoundaryEnding } from './stream-end.js';

/** gRPC's UNAVAILABLE: the status its clients take as "call again", on another connection. */
export const GRPC_UNAVAILABLE = 14;
export const DRAINING_MESSAGE = 'graft: this worker is draining; call again and the new generation answers';

/**
 * A gRPC call still streaming when its worker's drain has gone on for the
 * call grace (half of --graceful-timeout) is told to end in gRPC's words:
 * after the last whole message the app wrote, trailers with status 14
 * UNAVAILABLE, the status gRPC clients and their retry policies take as
 * "call again" (the next call goes to the new generation). A call that
 * finishes before the grace finishes as it would have; an unbounded one
 * (a watch, a feed) no longer holds its generation until --graceful-timeout
 * cuts the connection, which a client sees as a dropped transport.
 *
 * graft cannot reach a grpc-js Server (it serves through closures), so this
 * works on the HTTP/2 stream under the call: a response whose headers say
 * `application/grpc` was sent with waitForTrailers (there is no other way
 * to send a gRPC status after messages on node:http2), so ending its
 * writable side asks for trailers, and graft sends them.
 *
 * Where a call is between two messages: grpc-js writes each message whole,
 * with one write, and hands the next one (the app's later writes wait in
 * its own stream) only from that write's callback, where it also sends a
 * finished call's status. So a call is between messages once no write of
 * its is waiting for its callback: graft ends it from the callback of its
 * last write (a unary call has sent its status by then, and is left alone),
 * or once it has written nothing for the drain's quiet time with no write
 * outstanding. A call whose server has sent nothing yet (no headers) is
 * not told: graft has no boundary to end it at, and --graceful-timeout
 * bounds it. Once the stream closes, grpc-js tells the app's handler the
 * call was cancelled (its 'cancelled' event), as when a client goes away,
 * and drops what the handler writes after.
 */
export function endGrpcCall(stream: ServerHttp2Stream, quiet: QuietWatch): void {
  let pending = 0;
  let ending: BoundaryEnding | undefined;
  const write = stream.write as unknown as (...args: unknown[]) => boolean;
  (stream as unknown as { write: typeof write }).write = function (this: ServerHttp2Stream, ...args: unknown[]): boolean {
    const callback = args.at(-1);
    if (typeof callback === 'function') {
      pending++;
      args[args.length - 1] = (err?: Error | null) => {
        pending--;
        (callback as (err?: Error | null) => void)(err);
        // The app's next message, or grpc-js's status, went out from that callback: if neither, the call is between messages.
        if (pending === 0) ending?.tryEnd();
      };
    }
    return write.apply(this, args);
  };
  ending = endAtBoundary(
    stream,
    {
      owns: () => (stream.headersSent ? isGrpc(stream.sentHeaders?.['content-type']) : undefined),
      wrote: () => {},
      // Writes made before graft watched the call are not counted, but their bytes are still in the stream until sent.
      atBoundary: () => pending === 0 && stream.writableLength === 0,
      quietEnds: () => pending === 0 && stream.writableLength === 0,
      end: () => sendUnavailable(stream),
      endedMessage: DRAINING_MESSAGE,
    },
    quiet,
  );
}

/** gRPC's own content types (`application/grpc`, `+proto`, `+json`, …), not gRPC-Web's. */
function isGrpc(type: unknown): boolean {
  return /^\s*application\/grpc(\+|;|\s*$)/i.test(typeof type === 'string' ? type : '');
}

/**
 * End the stream with status UNAVAILABLE. graft's trailers go first (a
 * server that answers through node:http2's compatibility API, or grpc-js
 * ending the call at the same moment, asks to send its own on the same
 * event); the first trailers sent are the call's, later ones are not sent
 * (sending trailers twice throws).
 */
function sendUnavailable(stream: ServerHttp2Stream): void {
  const sendTrailers = stream.sendTrailers.bind(stream);
  let sent = false;
  stream.sendTrailers = (headers) => {
    if (sent || stream.destroyed) return;
    sent = true;
    sendTrailers(headers);
  };
  stream.prependOnceListener('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(GRPC_UNAVAILABLE), 'grpc-message': DRAINING_MESSAGE }));
  stream.end();
}
