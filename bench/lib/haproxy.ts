/**
 * A private HAProxy (Debian's package) in front of several graft masters, as a
 * fleet's load balancer: round robin, keep-alive on both sides, a health check
 * per backend, and HAProxy's defaults otherwise (no retry of a request that
 * reached a server). Started in the foreground, stopped with the run.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { onCleanup } from './cleanup.js';
import { freePort } from './http.js';
import { waitUntil } from './wait.js';

export interface Haproxy {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export function haproxyBinary(): string {
  for (const candidate of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) if (existsSync(candidate)) return candidate;
  throw new Error('haproxy is not installed: apt-get install -y haproxy (scripts/test-tools.sh does it for the tests)');
}

export async function startHaproxy(options: { backends: Array<{ name: string; port: number }>; dir: string; onLine?: (line: string) => void }): Promise<Haproxy> {
  const port = await freePort();
  const config = join(options.dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  timeout connect 2s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend fleet',
      `  bind 127.0.0.1:${port}`,
      '  default_backend hosts',
      'backend hosts',
      '  balance roundrobin',
      '  option httpchk GET /',
      ...options.backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port} check inter 500ms`),
      '',
    ].join('\n'),
  );
  const child = spawn(haproxyBinary(), ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', (l) => options.onLine?.(l));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  onCleanup(stop);
  const listening = await waitUntil(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    10_000,
  );
  if (!listening) {
    await stop();
    throw new Error(`haproxy did not listen on ${port} within 10 s`);
  }
  return { port, url: `http://127.0.0.1:${port}/`, stop };
}
