import type { Socket } from 'node:net';
import type { QuietWatch } from './quiet-watch.js';

/** What graft needs of a `ws` WebSocket (ws 8 keeps it on its socket under a symbol of this name). */
interface WebSocketLike {
  readyState: number;
  close(code: number, reason: string): void;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

function webSocketOf(socket: Socket): WebSocketLike | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'websocket');
  const ws = key ? (socket as unknown as Record<symbol, unknown>)[key] : undefined;
  return ws && typeof (ws as WebSocketLike).close === 'function' ? (ws as WebSocketLike) : undefined;
}

/**
 * A WebSocket of a draining worker moves in its protocol's words: it reads
 * no further message (the client's next ones go to the new generation once
 * it reconnects: the app never sees them, not even after the close frame,
 * when ws reads what came meanwhile), the app finishes answering what it already took (the
 * socket writes nothing for the drain's quiet time), then a close frame 1001
 * "going away" follows what the app queued, and the closing handshake ends
 * it. An upgraded protocol graft does not speak is left to the app's drain
 * hook (its SIGTERM handler, ctx.signal) and, at the end, the drain timeout.
 * Returns false when the socket carries no open WebSocket (yet).
 */
export function goAway(socket: Socket, quiet: QuietWatch): boolean {
  const ws = webSocketOf(socket);
  if (!ws || ws.readyState !== 1) return false;
  socket.pause();
  quiet.watch({
    written: () => socket.bytesWritten,
    gone: () => socket.destroyed,
    quiet: () => {
      // The messages the client sent meanwhile are never the app's: it could not answer them after
      // our close frame (ws drops such sends), and the client sends them again to the new generation.
      const emit = ws.emit;
      ws.emit = function (this: WebSocketLike, event: string | symbol, ...args: unknown[]) {
        return event !== 'message' && emit.call(this, event, ...args);
      };
      ws.close(1001, 'server going away');
      // Read again: the client's close frame answers ours.
      socket.resume();
    },
  });
  return true;
}
