import { createInterface } from 'node:readline';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isAlive, root } from '../reload/targets.js';

export { freePort, isAlive, root, runCommand, sleep, type CommandResult } from '../reload/targets.js';

/** Absolute, so graft, PM2 workers and children find tsx from any working directory. */
export const tsxImport = import.meta.resolve('tsx');
export const graftCli = join(root, 'src/cli/main.ts');
export const pm2Bin = join(root, 'node_modules/.bin/pm2');

const startedAt = performance.now();
export const log = (msg: string) => process.stderr.write(`[bench ${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);

// -------------------------------------------------------------------- cleanup

const cleanups: Array<() => Promise<void> | void> = [];
let cleaning: Promise<void> | undefined;

/** Run on the way out, last registered first, also on failure or Ctrl-C. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup failed: ${String(err)}`);
      }
    }
  })();
  return cleaning;
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// -------------------------------------------------------------------- the app

/**
 * The service every part measures: a handler module that imports a local
 * ./version.ts, whose content a "code change" rewrites. server.ts serves the
 * same handler as a plain node:http app for the process-level peers (graft
 * without --swap, PM2) and records when each process listens, with its version.
 */
export interface Project {
  dir: string;
  handler: string;
  server: string;
  version: string;
  writeVersion(v: string): void;
}

export function makeProject(prefix: string, initial = 'v0'): Project {
  const dir = tempDir(prefix);
  const version = join(dir, 'version.ts');
  const writeVersion = (v: string) => writeFileSync(version, `export const version: string = ${JSON.stringify(v)};\n`);
  writeVersion(initial);
  const handler = join(dir, 'handler.ts');
  writeFileSync(
    handler,
    `import type { IncomingMessage, ServerResponse } from 'node:http';
import { version } from './version.js';

const headers = { 'content-type': 'text/plain' };

export default function handle(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, headers);
  res.end(version + ' ' + process.pid + '\\n');
}
`,
  );
  const server = join(dir, 'server.ts');
  writeFileSync(
    server,
    `import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import handle from './handler.js';
import { version } from './version.js';

const server = createServer(handle);
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  // When this process serves, and which version: the end point of a process-level reload.
  if (process.env.BOOTS_FILE) appendFileSync(process.env.BOOTS_FILE, Date.now() + ' ' + process.pid + ' ' + version + '\\n');
  // PM2's graceful start (--wait-ready) and stop (SIGINT), as its docs tell an app to do.
  if (process.env.pm_id !== undefined) {
    process.send?.('ready');
    process.on('SIGINT', () => server.close(() => process.exit(0)));
  }
});
`,
  );
  return { dir, handler, server, version, writeVersion };
}

// ------------------------------------------------------------------ processes

/** A line a process wrote, with when it arrived (performance.now()) and its JSON record if it is one. */
export interface Line {
  at: number;
  text: string;
  record: Record<string, unknown> | undefined;
}

/** A long-running child (a graft master): its output as timed lines, and a sure stop. */
export class Proc {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  /** Worker pids the master reported ("worker started"), to make sure none is left behind. */
  readonly workerPids = new Set<number>();
  private waiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;

  constructor(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
    this.child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.child.stdout!, this.child.stderr!]) createInterface({ input: stream }).on('line', (text) => this.onLine(text));
    this.child.once('exit', () => this.wake());
    onCleanup(() => this.stop());
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private onLine(text: string): void {
    let record: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object') record = parsed as Record<string, unknown>;
    } catch {
      // not a JSON log line
    }
    this.lines.push({ at: performance.now(), text, record });
    if (record?.msg === 'worker started' && typeof record.workerPid === 'number') this.workerPids.add(record.workerPid);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first line from index `from` on that matches; undefined after timeoutMs or if the process exits. */
  async waitFor(match: (l: Line) => boolean, from: number, timeoutMs: number): Promise<{ line: Line; index: number } | undefined> {
    const deadline = performance.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.lines.length; i++) if (match(this.lines[i]!)) return { line: this.lines[i]!, index: i };
      const left = deadline - performance.now();
      if (left <= 0 || this.exited) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  tail(n = 20): string {
    return this.lines
      .slice(-n)
      .map((l) => l.text)
      .join('\n');
  }

  /** Idempotent: SIGTERM, SIGKILL after 20 s, then every worker it ever reported. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      if (!this.exited) {
        const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
        this.child.kill('SIGTERM');
        if (!(await exitedWithin(exited, 20_000))) {
          this.child.kill('SIGKILL');
          await exitedWithin(exited, 5_000);
        }
      }
      for (const pid of this.workerPids) {
        if (!isAlive(pid)) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    })());
  }
}

/** Whether `exited` settles within ms (the timer is cleared, so it never holds the process open). */
async function exitedWithin(exited: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([exited.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `graft start …` in `cwd`, JSON logs; resolves when the master runs. */
export async function startGraft(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const proc = new Proc(['--import', tsxImport, graftCli, 'start', ...args], { cwd, env: { ...process.env, GRAFT_LOG_FORMAT: 'json', ...env } });
  const running = await proc.waitFor((l) => l.record?.msg === 'master running', 0, 60_000);
  if (!running) throw new Error(`graft did not start:\n${proc.tail()}`);
  return proc;
}

// ----------------------------------------------------------------------- HTTP

/** One request on a fresh connection (Connection: close), so node:cluster may hand it to any worker. */
export function getFresh(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface Confirmation {
  /** Responses that carried another version than the expected one (or failed). */
  stale: number;
  /** Distinct worker pids seen answering with the expected version. */
  pids: number;
  requests: number;
  firstStale?: string;
}

/** `requests` fresh-connection GETs; every one must answer `expected <pid>`. */
export async function confirmVersion(url: string, expected: string, requests: number): Promise<Confirmation> {
  let stale = 0;
  let firstStale: string | undefined;
  const pids = new Set<string>();
  for (let i = 0; i < requests; i++) {
    try {
      const r = await getFresh(url);
      const [version, pid] = r.body.trim().split(' ');
      if (r.status === 200 && version === expected && pid) pids.add(pid);
      else {
        stale++;
        firstStale ??= `${r.status} ${JSON.stringify(r.body)}`;
      }
    } catch (err) {
      stale++;
      firstStale ??= String(err);
    }
  }
  return { stale, pids: pids.size, requests, ...(firstStale ? { firstStale } : {}) };
}

// ---------------------------------------------------------------------- stats

/** Nearest-rank percentile (q in 0..1) of the samples; NaN if none. */
export function percentile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
