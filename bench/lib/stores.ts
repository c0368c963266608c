/**
 * Private config stores and brokers on free loopback ports: nats-server
 * (JetStream), redis-server, a one-member etcd and a RabbitMQ node, each with
 * its data in a folder the caller owns (kept across a restart). Tests restart these, never the
 * machine's shared NATS and Redis; bench/fleet runs its etcd here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { onCleanup } from './cleanup.js';
import { freePort } from './http.js';
import { waitUntil } from './wait.js';

export interface StoreOptions {
  /** Where the store keeps its data. */
  dir: string;
  /** Every line the store prints, with its name and pid. */
  onLine?: (source: string, line: string) => void;
}

export class StoreProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly command: string,
    private readonly args: string[],
    private readonly onLine?: (source: string, line: string) => void,
    /** Its environment and working directory, and how long it may take to stop before it is killed. */
    private readonly run: { env?: NodeJS.ProcessEnv; cwd?: string; startMs?: number; stopMs?: number } = {},
  ) {}

  /** Start it and wait until its port accepts connections. */
  async start(): Promise<this> {
    // A process group of its own: a server started through a script (RabbitMQ's) is stopped with the script.
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: this.run.env ?? process.env, cwd: this.run.cwd });
    this.child = child;
    onCleanup(() => this.stop());
    for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on('line', (line) => this.onLine?.(`${this.name} ${child.pid}`, line));
    // A command that is not there ends with 'error' and no 'exit'.
    let why = 'exited at start';
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (err) => {
        why = `could not start: ${err.message} (scripts/test-tools.sh installs what the tests use)`;
        resolve();
      });
    });
    let gone = false;
    void this.exited.then(() => (gone = true));
    const failed = () => new Error(`${this.name} ${why} (${this.command} ${this.args.join(' ')})`);
    // Gone ends the wait at once (a check that throws would only count as "not yet").
    const up = await waitUntil(async () => gone || (await accepts(this.port)), this.run.startMs ?? 20_000);
    if (gone) throw failed();
    if (!up) throw new Error(`${this.name} did not accept connections on ${this.port} within ${(this.run.startMs ?? 20_000) / 1000} s`);
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const group = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    group('SIGTERM');
    const timer = setTimeout(() => group('SIGKILL'), this.run.stopMs ?? 5000);
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
export async function startNats(o: StoreOptions, auth?: { user: string; pass: string }): Promise<StoreProcess> {
  const port = await freePort();
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', o.dir];
  if (auth) args.push('--user', auth.user, '--pass', auth.pass);
  return new StoreProcess('nats-server', port, '/usr/sbin/nats-server', args, o.onLine).start();
}

/** redis-server without persistence: a restart comes back empty. */
export async function startRedis(o: Omit<StoreOptions, 'dir'>, auth?: { pass: string }): Promise<StoreProcess> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (auth) args.push('--requirepass', auth.pass);
  return new StoreProcess('redis-server', port, 'redis-server', args, o.onLine).start();
}

/** A one-member etcd cluster; data kept in a temp dir across restarts. */
export async function startEtcd(o: StoreOptions): Promise<StoreProcess> {
  const port = await freePort();
  const peer = await freePort();
  const dir = o.dir;
  return new StoreProcess('etcd', port, '/usr/bin/etcd', [
    '--name', 'graft-test',
    '--data-dir', dir,
    '--listen-client-urls', `http://127.0.0.1:${port}`,
    '--advertise-client-urls', `http://127.0.0.1:${port}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `graft-test=http://127.0.0.1:${peer}`,
    '--log-level', 'warn',
  ], o.onLine).start();
}

/**
 * A RabbitMQ node of its own, its data in `dir` (kept across a restart), on
 * free loopback ports, with the default guest user (loopback only). Run as
 * root, straight from RabbitMQ's own script (the packaged wrapper would switch
 * to the rabbitmq user, who cannot write a temp dir of root's).
 */
export async function startRabbit(o: StoreOptions): Promise<StoreProcess> {
  const port = await freePort();
  const dist = await freePort();
  writeFileSync(join(o.dir, 'enabled_plugins'), '[].\n');
  const env = {
    ...process.env,
    HOME: o.dir,
    RABBITMQ_NODENAME: `graft-test-${port}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_MNESIA_BASE: join(o.dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(o.dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(o.dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(o.dir, 'rabbitmq'),
    RABBITMQ_PID_FILE: join(o.dir, 'rabbitmq.pid'),
  };
  return new StoreProcess('rabbitmq', port, '/usr/lib/rabbitmq/bin/rabbitmq-server', [], o.onLine, { env, cwd: o.dir, startMs: 60_000, stopMs: 30_000 }).start();
}

/** `http://127.0.0.1:<port>`, what etcd clients take. */
export function etcdEndpoint(etcd: StoreProcess): string {
  return `http://127.0.0.1:${etcd.port}`;
}
