import { GraftError } from '../core/errors.js';
import type { QuietLease, QuietWatch } from './quiet-watch.js';

/**
 * Ending a stream that never ends by itself (a server-sent events response,
 * a gRPC server-streaming call) at a boundary between two of its messages,
 * so the client gets whole messages and then its protocol's word to go
 * elsewhere. Each protocol says which streams are its own, which write
 * leaves the stream at a boundary, and how it ends; this piece watches the
 * app's writes and the drain's quiet time.
 *
 * A stream ends right after a write that leaves it at a boundary (on the
 * next turn of the event loop, so the writes the app makes in the same
 * turn go out first), or once it has written nothing for the drain's quiet
 * time (an idle stream is between messages). Writes the app makes after
 * that are dropped, their callback given an error, as writes to a client
 * that left are, rather than an 'error' event (write after end) that would
 * take the worker down.
 */
export interface EndableStream {
  write(...args: never[]): boolean;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

export interface StreamProtocol {
  /** Whether the stream is one this protocol ends: undefined while it cannot tell yet (its headers are not out). */
  owns(): boolean | undefined;
  /** Told of each write the app makes, with what it wrote. */
  wrote(chunk: unknown): void;
  /** Whether the stream is between two messages now. */
  atBoundary(): boolean;
  /** Whether a stream that has written nothing for the quiet time may be ended now (default: yes). */
  quietEnds?(): boolean;
  /** End the stream, in the protocol's words. */
  end(): void;
  /** What a write after the end is told. */
  readonly endedMessage: string;
}

type Write = (this: EndableStream, ...args: unknown[]) => boolean;

export interface BoundaryEnding {
  /** End the stream now if it is the protocol's and at a boundary (a protocol that learns of a boundary later, from a write's callback). */
  tryEnd(): void;
}

export function endAtBoundary(stream: EndableStream, protocol: StreamProtocol, quiet: QuietWatch): BoundaryEnding {
  let owned: boolean | undefined;
  let ended = false;
  let writes = 0;
  const owns = (): boolean | undefined => {
    if (owned === undefined) owned = protocol.owns();
    return owned;
  };
  const end = () => {
    if (ended || stream.writableEnded || stream.destroyed) return;
    ended = true;
    protocol.end();
  };
  const ending: BoundaryEnding = {
    tryEnd: () => {
      if (owns() && protocol.atBoundary()) end();
    },
  };
  if (stream.writableEnded || stream.destroyed) return ending;
  const write = stream.write as unknown as Write;
  (stream as unknown as { write: Write }).write = function (this: EndableStream, ...args: unknown[]): boolean {
    if (ended) {
      const callback = args.at(-1);
      if (typeof callback === 'function') process.nextTick(callback as (err: Error) => void, new GraftError('GRAFT_STREAM_ENDED', protocol.endedMessage));
      return false;
    }
    const result = write.apply(this, args);
    writes++;
    protocol.wrote(args[0]);
    if (owns() && protocol.atBoundary()) setImmediate(() => protocol.atBoundary() && end());
    return result;
  };
  const lease: QuietLease = {
    written: () => writes,
    gone: () => ended || stream.writableEnded || stream.destroyed || owned === false,
    quiet: () => {
      if (owns() && (protocol.quietEnds?.() ?? true)) end();
      // Its headers are not out yet, or it is not between messages: look again after another quiet time.
      else if (owned !== false) quiet.watch(lease);
    },
  };
  owns();
  quiet.watch(lease);
  return ending;
}
