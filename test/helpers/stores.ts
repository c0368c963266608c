import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { freePort, tempDir, waitFor } from './graft.js';
import { record } from './output.js';

/**
 * Config stores for tests: private nats-server, redis-server and etcd
 * processes on free loopback ports with temporary data (tests that restart a
 * store use these, never the machine's shared NATS and Redis), and a TCP gate
 * that can cut graft off from a store that keeps running.
 */
export class StoreProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly command: string,
    private readonly args: string[],
  ) {}

  /** Start it and wait until its port accepts connections. */
  async start(): Promise<this> {
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on('line', (line) => record(`${this.name} ${child.pid}`, line));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void this.exited.then(() => (gone = true));
    await waitFor(async () => {
      if (gone) throw new Error(`${this.name} exited at start (${this.command} ${this.args.join(' ')})`);
      return accepts(this.port);
    }, 20_000, `${this.name} to accept connections on ${this.port}`);
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** nats-server with JetStream; data kept in a temp dir across restarts. */
export async function startNats(auth?: { user: string; pass: string }): Promise<StoreProcess> {
  const port = await freePort();
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', tempDir('graft-nats-')];
  if (auth) args.push('--user', auth.user, '--pass', auth.pass);
  return new StoreProcess('nats-server', port, '/usr/sbin/nats-server', args).start();
}

/** redis-server without persistence: a restart comes back empty. */
export async function startRedis(auth?: { pass: string }): Promise<StoreProcess> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (auth) args.push('--requirepass', auth.pass);
  return new StoreProcess('redis-server', port, 'redis-server', args).start();
}

/** A one-member etcd cluster; data kept in a temp dir across restarts. */
export async function startEtcd(): Promise<StoreProcess> {
  const port = await freePort();
  const peer = await freePort();
  const dir = tempDir('graft-etcd-');
  return new StoreProcess('etcd', port, '/usr/bin/etcd', [
    '--name', 'graft-test',
    '--data-dir', dir,
    '--listen-client-urls', `http://127.0.0.1:${port}`,
    '--advertise-client-urls', `http://127.0.0.1:${port}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `graft-test=http://127.0.0.1:${peer}`,
    '--log-level', 'warn',
  ]).start();
}

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
