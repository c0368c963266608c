import { chmodSync } from 'node:fs';
import net from 'node:net';
import { GraftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CONTROL_COMMANDS, type ControlRequest, type ControlResponse } from './protocol.js';
import { markOwnServer } from '../net/listeners.js';

export type ControlHandler = (request: ControlRequest) => Promise<unknown>;

/** The master's Unix control socket (mode 0600): one request, one answer per connection. */
export class ControlServer {
  private server: net.Server | undefined;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly path: string,
    private readonly handler: ControlHandler,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.serve(socket));
    markOwnServer(server);
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(previous);
    }
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  /** Stop accepting; requests already received still get their answer. */
  close(): void {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    // libuv unlinks the socket path as it closes; a successor binds it afterwards.
    server.close();
  }

  private serve(socket: net.Socket): void {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) {
        if (buffer.length > 65536) socket.destroy();
        return;
      }
      socket.removeAllListeners('data');
      const answered = this.answer(socket, buffer.slice(0, newline)).finally(() => this.pending.delete(answered));
      this.pending.add(answered);
    });
  }

  private async answer(socket: net.Socket, line: string): Promise<void> {
    let response: ControlResponse;
    try {
      const request = parseRequest(line);
      response = { ok: true, result: await this.handler(request) };
    } catch (err) {
      // A failure graft did not foresee keeps its own message and stack, under GRAFT_INTERNAL.
      const error = GraftError.wrap(err, 'control request failed');
      if (!(err instanceof GraftError)) this.log.error('control request failed', { code: error.code, error: error.message, detail: (err as Error)?.stack });
      response = { ok: false, error: error.toJSON() };
    }
    await new Promise<void>((resolve) => {
      // A client that never closes its side must not keep a stopping master alive.
      const timer = setTimeout(() => socket.destroy(), 2000);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end(JSON.stringify(response) + '\n');
    });
  }

  /** Resolves when every request received so far has been answered. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}

function parseRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new GraftError('GRAFT_CONTROL_FAILED', 'control request is not JSON; send one JSON object per line');
  }
  const cmd = (value as { cmd?: unknown } | null)?.cmd;
  if (typeof cmd !== 'string' || !(CONTROL_COMMANDS as readonly string[]).includes(cmd)) {
    throw new GraftError('GRAFT_UNKNOWN_COMMAND', `unknown control command ${JSON.stringify(cmd)}; expected one of ${CONTROL_COMMANDS.join(', ')}`);
  }
  return value as ControlRequest;
}
