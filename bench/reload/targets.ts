import { createInterface } from 'node:readline';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/**
 * The three ways to run bench/reload/app.js with 2 workers: bare node:cluster,
 * graft and PM2. Each starts on a free loopback port, and stops for sure
 * (graceful first, then SIGKILL of everything it knows about).
 */
export const root = fileURLToPath(new URL('../../', import.meta.url));
export const appPath = 'bench/reload/app.js';
const clusterPath = join(root, 'bench/reload/cluster.js');
const graftCli = join(root, 'src/cli/main.ts');
const pm2Bin = join(root, 'node_modules/pm2/bin/pm2');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

import { freePort } from '../../test/helpers/graft.js';

export { freePort };

/** Alive and not a zombie (a reparented zombie may never be reaped here). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}

function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** performance.now() at spawn and at exit. */
  startedAt: number;
  endedAt: number;
}

/** Run a command to completion, killed (SIGKILL) if it outlives timeoutMs. */
export function runCommand(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<CommandResult> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const child = spawn(process.execPath, args, { cwd: root, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      stderr += String(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, startedAt, endedAt: performance.now() });
    });
  });
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function waitUntil(check: () => boolean, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (performance.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

export interface Target {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** Called as soon as a target exists, before it is ready, so that it is stopped whatever happens next. */
export type Register = (target: Target) => void;

/** A line of a process's stderr, with when it arrived. */
export interface LogLine {
  at: number;
  text: string;
  record: Record<string, unknown> | undefined;
}

function collectLines(child: ChildProcess, onLine: (line: LogLine) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (text) => {
      let record: Record<string, unknown> | undefined;
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed && typeof parsed === 'object') record = parsed as Record<string, unknown>;
      } catch {
        // not a JSON log line
      }
      onLine({ at: performance.now(), text, record });
    });
  }
}

// ---------------------------------------------------------------- node:cluster

export class ClusterTarget implements Target {
  readonly name = 'node:cluster';
  readonly url: string;
  readonly lines: LogLine[] = [];
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
  ) {
    this.url = `http://127.0.0.1:${port}/`;
    collectLines(child, (l) => this.lines.push(l));
  }

  static async start(workers: number, register: Register): Promise<ClusterTarget> {
    const port = await freePort();
    const child = spawn(process.execPath, [clusterPath], {
      cwd: root,
      env: { ...process.env, PORT: String(port), WORKERS: String(workers) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const target = new ClusterTarget(port, child);
    register(target);
    const ready = await waitUntil(() => target.lines.some((l) => l.text.startsWith('cluster ready')) || child.exitCode !== null, 20_000);
    if (!ready || child.exitCode !== null) {
      await target.stop();
      throw new Error(`node:cluster did not start:\n${target.lines.map((l) => l.text).join('\n')}`);
    }
    return target;
  }

  private stopping: Promise<void> | undefined;

  /** Idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    if (!(await waitExit(this.child, 10_000))) {
      this.child.kill('SIGKILL');
      await waitExit(this.child, 5_000);
    }
  }
}

// ----------------------------------------------------------------------- graft

export interface GraftReload {
  command: CommandResult;
  ok: boolean;
  previous: number | undefined;
  generation: number | undefined;
}

export class GraftTarget implements Target {
  readonly name = 'graft';
  readonly url: string;
  readonly lines: LogLine[] = [];
  /** generation -> when its "generation retired" line arrived. */
  readonly retiredAt = new Map<number, number>();
  /** generation -> its worker pids, from "worker started". */
  readonly workerPids = new Map<number, Set<number>>();

  private constructor(
    readonly port: number,
    readonly socket: string,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.url = `http://127.0.0.1:${port}/`;
    collectLines(child, (l) => this.onLine(l));
  }

  static async start(workers: number, register: Register): Promise<GraftTarget> {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'bench-reload-graft-'));
    const socket = join(dir, 'ctl.sock');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', graftCli, 'start', appPath, '-w', String(workers), '-p', String(port), '--socket', socket],
      { cwd: root, env: { ...process.env, GRAFT_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const target = new GraftTarget(port, socket, dir, child);
    register(target);
    const running = await waitUntil(() => target.lines.some((l) => l.record?.msg === 'master running') || child.exitCode !== null, 30_000);
    if (!running || child.exitCode !== null) {
      await target.stop();
      throw new Error(`graft did not start:\n${target.lines.map((l) => l.text).join('\n')}`);
    }
    return target;
  }

  private onLine(line: LogLine): void {
    this.lines.push(line);
    const r = line.record;
    if (!r || r.role !== 'master') return;
    if (r.msg === 'generation retired' && typeof r.generation === 'number') this.retiredAt.set(r.generation, line.at);
    if (r.msg === 'worker started' && typeof r.generation === 'number' && typeof r.workerPid === 'number') {
      let pids = this.workerPids.get(r.generation);
      if (!pids) this.workerPids.set(r.generation, (pids = new Set()));
      pids.add(r.workerPid);
    }
  }

  /** `graft reload`: returns once the new generation is committed (the old one then drains). */
  async reload(): Promise<GraftReload> {
    const command = await runCommand(['--import', 'tsx', graftCli, 'reload', '--socket', this.socket], { timeoutMs: 60_000 });
    const m = /generation (\d+) serves(?: \(generation (\d+) draining\))?/.exec(command.stdout);
    return {
      command,
      ok: command.code === 0 && m !== null,
      generation: m ? Number(m[1]) : undefined,
      previous: m?.[2] !== undefined ? Number(m[2]) : undefined,
    };
  }

  /** Workers the master had to kill because they outlived the graceful timeout. */
  killedAfterTimeout(): number {
    return this.lines.filter((l) => l.record?.msg === 'worker killed after the graceful timeout').length;
  }

  /** Worker pids of generations before `generation` that are still alive. */
  leftovers(generation: number): number[] {
    const alive: number[] = [];
    for (const [gen, pids] of this.workerPids) if (gen < generation) for (const pid of pids) if (isAlive(pid)) alive.push(pid);
    return alive;
  }

  private stopping: Promise<void> | undefined;

  /** Idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    const running = this.child.exitCode === null && this.child.signalCode === null;
    if (running) {
      this.child.kill('SIGTERM');
      if (!(await waitExit(this.child, 20_000))) {
        this.child.kill('SIGKILL');
        await waitExit(this.child, 5_000);
      }
    }
    // Workers leave on their own once their master is gone; make sure.
    for (const pids of this.workerPids.values()) for (const pid of pids) if (isAlive(pid)) killHard(pid);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------- PM2

export interface Pm2Process {
  pid: number;
  pmId: number;
  status: string;
}

export interface Pm2Reload {
  command: CommandResult;
  ok: boolean;
  oldPids: number[];
  newPids: number[];
  /** performance.now() when the last old pid was seen gone (polled every 10 ms after the command returned). */
  oldGoneAt: number | undefined;
  /** The old pids were confirmed absent from `pm2 jlist`. */
  confirmed: boolean;
  /** The last `pm2 jlist` seen, as pm_id:pid:status. */
  seen: string;
}

export class Pm2Target implements Target {
  readonly name = 'PM2';
  readonly url: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly seenPids = new Set<number>();
  private daemonPid: number | undefined;
  private current: number[] = [];

  private constructor(
    readonly port: number,
    readonly home: string,
  ) {
    this.url = `http://127.0.0.1:${port}/`;
    // An isolated PM2_HOME: its own daemon, sockets and logs; no global PM2 is touched.
    this.env = { ...process.env, PM2_HOME: home, PORT: String(port), FORCE_COLOR: '0', NO_COLOR: '1' };
  }

  static async start(workers: number, register: Register): Promise<Pm2Target> {
    const port = await freePort();
    const home = mkdtempSync(join(tmpdir(), 'bench-reload-pm2-'));
    const target = new Pm2Target(port, home);
    register(target);
    try {
      const r = await target.pm2(
        ['start', appPath, '-i', String(workers), '--wait-ready', '--listen-timeout', '10000', '--kill-timeout', '5000', '--name', 'bench'],
        60_000,
      );
      if (r.code !== 0) throw new Error(`pm2 start failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
      target.readDaemonPid();
      const online = await waitUntilAsync(async () => {
        const list = await target.list();
        return list.length === workers && list.every((p) => p.status === 'online' && p.pid > 0);
      }, 30_000);
      if (!online) throw new Error('PM2 workers did not come online');
      target.current = (await target.list()).map((p) => p.pid);
    } catch (err) {
      await target.stop();
      throw err;
    }
    return target;
  }

  private readDaemonPid(): void {
    try {
      this.daemonPid = Number(readFileSync(join(this.home, 'pm2.pid'), 'utf8').trim()) || undefined;
    } catch {
      // not started
    }
  }

  pm2(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
    return runCommand([pm2Bin, ...args], { env: this.env, timeoutMs });
  }

  async list(): Promise<Pm2Process[]> {
    const r = await this.pm2(['jlist'], 30_000);
    const start = r.stdout.indexOf('[');
    if (r.code !== 0 || start < 0) throw new Error(`pm2 jlist failed (${r.code}): ${r.stderr}`);
    const list = JSON.parse(r.stdout.slice(start)) as Array<{ pid: number; pm_id: number; name: string; pm2_env?: { status?: string } }>;
    const procs = list.filter((p) => p.name === 'bench').map((p) => ({ pid: p.pid, pmId: p.pm_id, status: p.pm2_env?.status ?? '?' }));
    for (const p of procs) if (p.pid > 0) this.seenPids.add(p.pid);
    return procs;
  }

  /**
   * `pm2 reload bench`, timed to completion; then the old pids are polled until
   * gone and confirmed absent from `pm2 jlist` (whose pids are the next reload's old ones).
   */
  async reload(): Promise<Pm2Reload> {
    const oldPids = this.current;
    const command = await this.pm2(['reload', 'bench'], 60_000);
    let oldGoneAt: number | undefined;
    if (await waitUntil(() => oldPids.every((pid) => !isAlive(pid)), 30_000, 10)) oldGoneAt = performance.now();
    let confirmed = false;
    let newPids: number[] = [];
    let seen = '';
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      const list = await this.list().catch((): Pm2Process[] => []);
      newPids = list.map((p) => p.pid);
      seen = list.map((p) => `${p.pmId}:${p.pid}:${p.status}`).join(' ');
      if (list.length > 0 && list.every((p) => p.status === 'online' && !oldPids.includes(p.pid))) {
        confirmed = true;
        break;
      }
      await sleep(100);
    }
    this.current = newPids;
    return { command, ok: command.code === 0 && confirmed, oldPids, newPids, oldGoneAt, confirmed, seen };
  }

  /** Workers the daemon SIGKILLed because they outlived --kill-timeout (from its log, PM2_HOME/pm2.log). */
  killedAfterTimeout(): number {
    try {
      return readFileSync(join(this.home, 'pm2.log'), 'utf8').match(/still alive after \d+ms, sending SIGKILL/g)?.length ?? 0;
    } catch {
      return 0;
    }
  }

  /** Pids PM2 ever reported that are still alive, except the current workers. */
  leftovers(): number[] {
    return [...this.seenPids].filter((pid) => !this.current.includes(pid) && isAlive(pid));
  }

  /** `pm2 kill` (always), then make sure the daemon and every worker it had are gone. */
  private stopping: Promise<void> | undefined;

  /** Idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    this.readDaemonPid();
    await this.pm2(['kill'], 30_000).catch(() => undefined);
    const pids = [...this.seenPids, ...(this.daemonPid ? [this.daemonPid] : [])];
    if (!(await waitUntil(() => pids.every((pid) => !isAlive(pid)), 5_000))) {
      for (const pid of pids) if (isAlive(pid)) killHard(pid);
    }
    rmSync(this.home, { recursive: true, force: true });
  }
}

async function waitUntilAsync(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (performance.now() > deadline) return false;
    await sleep(200);
  }
}
