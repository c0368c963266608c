import net from 'node:net';
import { after } from 'node:test';
import { cleanup } from '../../bench/lib/cleanup.js';
import * as stores from '../../bench/lib/stores.js';
import { tempDir } from './graft.js';
import { record } from './output.js';

export type { StoreProcess } from '../../bench/lib/stores.js';

/**
 * Config stores for tests (bench/lib/stores.ts), their data in temp folders
 * removed at exit and their output in the test's output file; and a TCP gate
 * that can cut graft off from a store that keeps running.
 */
export const startNats = (auth?: { user: string; pass: string }) => stores.startNats({ dir: tempDir('graft-nats-'), onLine: record }, auth);
export const startRedis = (auth?: { pass: string }) => stores.startRedis({ onLine: record }, auth);
export const startEtcd = () => stores.startEtcd({ dir: tempDir('graft-etcd-'), onLine: record });
export const startRabbit = () => stores.startRabbit({ dir: tempDir('graft-rabbit-'), onLine: record });

// Once a file's tests are over, whatever a failed test left running is stopped: a store left behind would keep the file from ending.
after(() => cleanup());

/**
 * A TCP relay in front of a store: `cut()` drops every relayed connection and
 * refuses new ones while the store itself keeps running; `open()` lets
 * connections through again on the same port.
 */
export class TcpGate {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: number) {}

  async open(): Promise<this> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.once('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    return this;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
