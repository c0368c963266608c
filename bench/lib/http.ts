import http from 'node:http';
import net from 'node:net';

/** A free TCP port on loopback (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * One GET on a fresh connection (no agent, no keep-alive), so node:cluster's
 * round robin may hand it to any worker. No answer within timeoutMs rejects
 * with an error whose code is 'timeout'.
 */
export function getFresh(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`GET ${url} timed out after ${timeoutMs} ms`), { code: 'timeout' })));
    req.on('error', reject);
  });
}
