/**
 * A service under PM2 in cluster mode, in an isolated PM2_HOME (its own
 * daemon, sockets and logs; no global PM2 is touched), on a free loopback
 * port. Waits on `pm2 jlist` status, never on sleeps; `pm2 kill` at cleanup,
 * then SIGKILL of the daemon and of every worker it had.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isAlive, onCleanup, reap, tempDir } from './cleanup.js';
import { freePort } from './http.js';
import { pm2Bin } from './paths.js';
import { runCommand, type CommandResult } from './proc.js';
import { sleep, waitUntil } from './wait.js';

export interface Pm2Options {
  /** The PM2 process name (`--name`). */
  app: string;
  script: string;
  workers: number;
  /** Added to the environment of the CLI, the daemon and so the app (PORT is set). */
  env?: NodeJS.ProcessEnv;
  /** Run the script with `--interpreter node --node-args <nodeArgs>` (PM2 runs .ts with bun otherwise). */
  nodeArgs?: string;
}

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

export class Pm2 {
  readonly url: string;
  readonly app: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly seenPids = new Set<number>();
  private current: number[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly port: number,
    readonly home: string,
    o: Pm2Options,
  ) {
    this.app = o.app;
    this.url = `http://127.0.0.1:${port}/`;
    this.env = { ...process.env, ...o.env, PM2_HOME: home, PORT: String(port), FORCE_COLOR: '0', NO_COLOR: '1' };
  }

  /**
   * `pm2 start <script> -i <workers> --wait-ready --listen-timeout 10000 --kill-timeout 5000`,
   * then waits until `pm2 jlist` shows every worker online.
   */
  static async start(o: Pm2Options): Promise<Pm2> {
    const pm2 = new Pm2(await freePort(), tempDir('bench-pm2-'), o);
    onCleanup(() => pm2.stop());
    const interpreter = o.nodeArgs !== undefined ? ['--interpreter', 'node', '--node-args', o.nodeArgs] : [];
    const r = await pm2.command(
      ['start', o.script, ...interpreter, '-i', String(o.workers), '--wait-ready', '--listen-timeout', '10000', '--kill-timeout', '5000', '--name', o.app],
      60_000,
    );
    if (r.code !== 0) throw new Error(`pm2 start failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
    let last: Pm2Process[] = [];
    const online = await waitUntil(
      async () => {
        last = await pm2.list();
        return last.length === o.workers && last.every((p) => p.status === 'online' && p.pid > 0);
      },
      30_000,
      200,
    );
    if (!online) throw new Error(`PM2 workers did not come online: ${JSON.stringify(last)}`);
    pm2.current = last.map((p) => p.pid);
    return pm2;
  }

  /** A `pm2` CLI command in this PM2_HOME. */
  command(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
    return runCommand([pm2Bin, ...args], { env: this.env, timeoutMs });
  }

  /** This app's processes, from `pm2 jlist`. */
  async list(): Promise<Pm2Process[]> {
    const r = await this.command(['jlist'], 30_000);
    const start = r.stdout.indexOf('[');
    if (r.code !== 0 || start < 0) throw new Error(`pm2 jlist failed (${r.code}): ${r.stderr}`);
    const list = JSON.parse(r.stdout.slice(start)) as Array<{ pid: number; pm_id: number; name: string; pm2_env?: { status?: string } }>;
    const procs = list.filter((p) => p.name === this.app).map((p) => ({ pid: p.pid, pmId: p.pm_id, status: p.pm2_env?.status ?? '?' }));
    this.track(procs.map((p) => p.pid));
    return procs;
  }

  /** Pids learned elsewhere (the app's own records) that must be gone after stop. */
  track(pids: Iterable<number>): void {
    for (const pid of pids) if (pid > 0) this.seenPids.add(pid);
  }

  /**
   * `pm2 reload <app>`, timed to completion; then the old pids are polled until
   * gone and confirmed absent from `pm2 jlist` (whose pids are the next reload's old ones).
   */
  async reload(): Promise<Pm2Reload> {
    const oldPids = this.current;
    const command = await this.command(['reload', this.app], 60_000);
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

  /** The God daemon's pid (PM2_HOME/pm2.pid), undefined before it wrote it. */
  daemonPid(): number | undefined {
    try {
      return Number(readFileSync(join(this.home, 'pm2.pid'), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
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

  /** Idempotent: `pm2 kill`, then the daemon and every worker it had are made sure gone. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      const daemon = this.daemonPid();
      await this.command(['kill'], 30_000).catch(() => undefined);
      await reap([...this.seenPids, ...(daemon ? [daemon] : [])], 5_000);
    })());
  }
}
