/**
 * A service under graft: `graft start` as a child with JSON logs, on a free
 * loopback port and its own control socket. Waits on its log lines, never on
 * sleeps; stopped at cleanup, with every worker it ever started.
 */
import { dirname, join } from 'node:path';
import { graftBin } from './built.js';
import { performance } from 'node:perf_hooks';
import { isAlive, tempDir } from './cleanup.js';
import { graftCli, sendControl, type ControlRequest } from './graft.js';
import { freePort } from './http.js';
import { tsxImport } from './paths.js';
import { Proc, runCommand, type CommandResult, type Line } from './proc.js';
import { waitUntil } from './wait.js';

export interface GraftOptions {
  /** The service entry, as `graft start` takes it. */
  entry: string;
  workers: number;
  /** More `graft start` arguments (--swap, --watch, --config FILE…). */
  args?: string[];
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Added to the environment (GRAFT_LOG_FORMAT=json is always set). */
  env?: NodeJS.ProcessEnv;
  /** Run graft as installed (bin/graft.js on dist/, no tsx anywhere; see builtPackage) instead of from its source. */
  built?: boolean;
  /** Run this graft instead, as installed: another checkout's bin/graft.js (builtAt, for an A/B). */
  bin?: string;
}

export interface GraftReload {
  command: CommandResult;
  ok: boolean;
  previous: number | undefined;
  generation: number | undefined;
}

export class Graft extends Proc {
  readonly url: string;
  /** generation -> when its "generation retired" line arrived. */
  readonly retiredAt = new Map<number, number>();
  /** generation -> its worker pids, from "worker started". */
  readonly workerPids = new Map<number, Set<number>>();

  /** How this service's graft CLI runs: as installed, or from the source with tsx, as the service does. */
  private readonly cli: string[];

  private constructor(
    readonly port: number,
    readonly socket: string,
    o: GraftOptions,
  ) {
    const cli = o.bin ? [o.bin] : o.built ? [graftBin] : ['--import', tsxImport, graftCli];
    super([...cli, 'start', o.entry, '-w', String(o.workers), '-p', String(port), '--socket', socket, ...(o.args ?? [])], {
      ...(o.cwd ? { cwd: o.cwd } : {}),
      // A runtime directory (service registry) of its own: the benchmarks run masters of one name side by side, as hosts.
      env: { ...process.env, GRAFT_LOG_FORMAT: 'json', GRAFT_RUNTIME_DIR: dirname(socket), ...o.env },
    });
    this.url = `http://127.0.0.1:${port}/`;
    this.cli = cli;
  }

  /** Resolves once the master logs "master running". */
  static async start(o: GraftOptions): Promise<Graft> {
    const port = await freePort();
    const socket = join(tempDir('bench-graft-'), 'ctl.sock');
    const g = new Graft(port, socket, o);
    if (!(await g.waitFor((l) => l.record?.msg === 'master running', 0, 60_000))) {
      await g.stop();
      throw new Error(`graft did not start:\n${g.tail()}`);
    }
    return g;
  }

  /**
   * Resolves once the service has finished starting: its standby master has started its warm
   * workers (5 s after it loaded, src/pool/warm-workers.ts). Until then they boot beside whatever
   * a benchmark measures: the cost of a start, not of the steady state. Needs the defaults (a
   * standby, --warm-workers above 0).
   */
  async settled(): Promise<void> {
    if (!(await this.waitFor((l) => l.record?.msg === 'standby warm workers started', 0, 30_000))) throw new Error(`graft's standby started no warm workers:\n${this.tail()}`);
  }

  protected override onLine(line: Line): void {
    const r = line.record;
    if (!r || r.role !== 'master') return;
    if (r.msg === 'generation retired' && typeof r.generation === 'number') this.retiredAt.set(r.generation, line.at);
    if (r.msg === 'worker started' && typeof r.generation === 'number' && typeof r.workerPid === 'number') {
      let pids = this.workerPids.get(r.generation);
      if (!pids) this.workerPids.set(r.generation, (pids = new Set()));
      pids.add(r.workerPid);
    }
  }

  /** Every worker pid the master reported starting. */
  protected override descendants(): number[] {
    return [...this.workerPids.values()].flatMap((pids) => [...pids]);
  }

  /** How many worker processes the master has started so far. */
  get workersStarted(): number {
    return this.descendants().length;
  }

  /** A request over the control socket, in process (what the CLI sends). */
  control(request: ControlRequest): Promise<unknown> {
    return sendControl(this.socket, request);
  }

  /** Pids of the ready workers, from `graft status`. */
  async readyWorkerPids(): Promise<number[]> {
    const status = (await this.control({ cmd: 'status' })) as { workers: Array<{ pid: number; state: string }> };
    return status.workers.filter((w) => w.state === 'ready').map((w) => w.pid);
  }

  /** `graft reload` (the CLI): returns once the new generation is committed (the old one then drains). */
  async reload(): Promise<GraftReload> {
    const command = await runCommand([...this.cli, 'reload', '--socket', this.socket], { timeoutMs: 60_000 });
    const m = /generation (\d+) serves(?: \(generation (\d+) draining\))?/.exec(command.stdout);
    return {
      command,
      ok: command.code === 0 && m !== null,
      generation: m ? Number(m[1]) : undefined,
      previous: m?.[2] !== undefined ? Number(m[2]) : undefined,
    };
  }

  /**
   * Waits until `generation` has retired (its "generation retired" line) and
   * every worker pid it had is gone (polled every 10 ms, as Pm2.reload polls
   * its old pids): performance.now() then, or undefined after timeoutMs.
   */
  async gone(generation: number, timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    if (!(await this.until(() => this.retiredAt.has(generation), timeoutMs))) return undefined;
    const pids = [...(this.workerPids.get(generation) ?? [])];
    if (!pids.some(isAlive)) return this.retiredAt.get(generation)!;
    return (await waitUntil(() => !pids.some(isAlive), Math.max(0, deadline - performance.now()), 10)) ? performance.now() : undefined;
  }

  /** Workers the master had to kill because they outlived the graceful timeout. */
  killedAfterTimeout(): number {
    return this.lines.filter((l) => l.record?.msg === 'worker killed after the graceful timeout').length;
  }

  /** Worker pids of generations before `generation` that are still alive. */
  leftovers(generation: number): number[] {
    return [...this.workerPids].flatMap(([gen, pids]) => (gen < generation ? [...pids].filter(isAlive) : []));
  }
}
