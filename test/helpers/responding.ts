/** A node:http server whose responses the test writes itself, and a client that reads each body to its end. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deferred } from '../../src/core/deferred.js';

/** A node:http server that hands each request's response to the test, unanswered, and a client that reads each body to its end (decoded as `encoding`). */
export async function responding(encoding: BufferEncoding): Promise<{ exchange(): Promise<{ res: http.ServerResponse; body: Promise<string> }>; close(): void }> {
  const waiting: ((res: http.ServerResponse) => void)[] = [];
  const server = http.createServer((_req, res) => waiting.shift()!(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    exchange: async () => {
      const res = new Promise<http.ServerResponse>((resolve) => waiting.push(resolve));
      const body = deferred<string>();
      const req = http.get(url, { agent: false }, (incoming) => {
        let text = '';
        incoming.setEncoding(encoding);
        incoming.on('data', (chunk: string) => (text += chunk));
        incoming.on('end', () => body.resolve(text));
        incoming.on('error', body.reject);
      });
      req.on('error', body.reject);
      return { res: await res, body: body.promise };
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
