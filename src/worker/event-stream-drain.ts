import type { QuietWatch } from './quiet-watch.js';
import { endAtBoundary, type EndableStream } from './stream-end.js';

/**
 * A server-sent events response (`Content-Type: text/event-stream`) never
 * ends by itself, so a draining worker ends it, in its protocol's words:
 * the response ends right after an event, and the client's EventSource
 * reconnects (to the new generation) sending Last-Event-ID, so an app that
 * numbers its events (`id:`) resumes the stream there and none is lost.
 *
 * It ends at the first event boundary graft can be sure of (stream-end.ts):
 * right after a write that completes an event (its text ends with a blank
 * line), or once it has written nothing for the drain's quiet time (an idle
 * stream, or one whose last write before the drain graft did not see). An
 * event the app writes in several pieces is not cut: the pieces before its
 * blank line do not end it (unless the app pauses longer than the quiet time
 * between two of them).
 */
export interface StreamResponse extends EndableStream {
  end(): unknown;
}

/**
 * Watch a response of a draining worker (one in flight when the drain
 * began, or one that began during it): if it is, or turns out to be, an
 * event stream, end it at its next event boundary. contentType reads its
 * Content-Type once its headers are out.
 */
export function endEventStream(res: StreamResponse, contentType: () => string | undefined, quiet: QuietWatch): void {
  let tail = '';
  endAtBoundary(
    res,
    {
      owns: () => (res.headersSent ? isEventStream(contentType()) : undefined),
      wrote: (chunk) => {
        tail = (tail + tailOf(chunk)).slice(-4);
      },
      atBoundary: () => endsEvent(tail),
      end: () => res.end(),
      endedMessage: 'this worker is draining: graft ended the event stream after an event, and the client reconnects to the new generation',
    },
    quiet,
  );
}

function isEventStream(type: string | undefined): boolean {
  return /^\s*text\/event-stream\b/i.test(type ?? '');
}

/** The last characters of a chunk (enough to see a blank line). */
function tailOf(chunk: unknown): string {
  if (typeof chunk === 'string') return chunk.slice(-4);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).subarray(-4).toString('latin1');
  return '';
}

/** An event ends with a blank line, in any of the line endings the format allows. */
function endsEvent(tail: string): boolean {
  return tail.endsWith('\n\n') || tail.endsWith('\r\n\r\n') || tail.endsWith('\r\r');
}

/** The Content-Type of a node:http response, also when writeHead() was given the headers (getHeader() does not see those). */
export function http1ContentType(res: { getHeader(name: string): unknown; _header?: unknown }): string | undefined {
  const type = res.getHeader('content-type');
  if (type !== undefined) return String(type);
  const head = typeof res._header === 'string' ? res._header : '';
  return /^content-type:[ \t]*([^\r\n]*)/im.exec(head)?.[1];
}
