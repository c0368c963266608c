import net from 'node:net';
import { GraftError } from '../core/errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * Send one request to a master and wait for its outcome. Connection failures
 * are retried for a moment: during `graft upgrade` the socket is handed from
 * one master to the next.
 */
export async function sendControl(socketPath: string, request: ControlRequest, retryMs = 1500, answerMs?: number): Promise<unknown> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      return await attempt(socketPath, request, answerMs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!code || !RETRYABLE.has(code)) throw err;
      if (Date.now() >= deadline) {
        throw new GraftError('GRAFT_NO_MASTER', `no graft master answers on ${socketPath} (${code}); \`graft ls\` lists the running services, \`graft start <entry>\` starts one`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `answerMs`: give up on a master that does not answer in that time (`graft ls` asks every master). */
function attempt(socketPath: string, request: ControlRequest, answerMs: number | undefined): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffer = '';
    let answered = false;
    if (answerMs !== undefined) {
      socket.setTimeout(answerMs, () => {
        if (answered) return;
        answered = true;
        socket.destroy();
        reject(new GraftError('GRAFT_CONTROL_FAILED', `the master on ${socketPath} did not answer within ${answerMs} ms`));
      });
    }
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
    });
    socket.on('error', (err) => {
      if (!answered) reject(err);
    });
    socket.on('close', () => {
      if (answered) return;
      answered = true;
      const line = buffer.trim();
      if (!line) {
        reject(new GraftError('GRAFT_CONTROL_FAILED', `the master on ${socketPath} closed the connection without an answer (it may have died)`));
        return;
      }
      let response: ControlResponse;
      try {
        response = JSON.parse(line) as ControlResponse;
      } catch {
        reject(new GraftError('GRAFT_CONTROL_FAILED', `the master on ${socketPath} answered something that is not JSON`));
        return;
      }
      if (response.ok) resolve(response.result);
      else reject(GraftError.from(response.error));
    });
  });
}
