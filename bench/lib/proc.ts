/**
 * Child processes: a command run to completion (runCommand, runJson) and a
 * long-running one whose output is read as timed lines that can be waited on
 * (Proc). Every Proc is stopped at cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { onCleanup, reap } from './cleanup.js';
import { root } from './paths.js';
import { settlesWithin } from './wait.js';

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

/** `node ...args` to completion (cwd: the repository root), killed (SIGKILL) if it outlives timeoutMs. */
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

/** runCommand for a child that prints its result as one JSON line, the last on stdout. */
export async function runJson<T>(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ value: T; run: CommandResult }> {
  const run = await runCommand(args, options);
  const line = run.stdout.trim().split('\n').pop() ?? '';
  if (run.code === 0 && line.startsWith('{')) {
    try {
      return { value: JSON.parse(line) as T, run };
    } catch {
      // reported below
    }
  }
  throw new Error(
    `node ${args.join(' ')} failed: exit ${run.code ?? run.signal}${run.timedOut ? ` (timed out after ${options.timeoutMs / 1000} s)` : ''}\n` +
      `${run.stdout.slice(-1000)}\n${run.stderr.slice(-2000)}`,
  );
}

/** A line a process wrote, with when it arrived (performance.now()) and its JSON record if it is one. */
export interface Line {
  at: number;
  text: string;
  record: Record<string, unknown> | undefined;
}

/** A long-running `node ...args` (or another program): its stdout and stderr as timed lines, and a sure stop. */
export class Proc {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  private waiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;

  /** `program` (default: this node) with `args`; `sh` with `-c` runs a shell command line (a redirection). */
  constructor(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; program?: string } = {}) {
    this.child = spawn(options.program ?? process.execPath, args, { cwd: options.cwd ?? root, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.child.stdout!, this.child.stderr!]) createInterface({ input: stream }).on('line', (text) => this.push(text));
    this.child.once('exit', () => this.wake());
    onCleanup(() => this.stop());
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private push(text: string): void {
    let record: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object') record = parsed as Record<string, unknown>;
    } catch {
      // not a JSON log line
    }
    const line = { at: performance.now(), text, record };
    this.lines.push(line);
    this.onLine(line);
    this.wake();
  }

  /** Called for every line, after it is in `lines`. */
  protected onLine(_line: Line): void {}

  /** Processes it started, to make sure none is left once it is stopped. */
  protected descendants(): Iterable<number> {
    return [];
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first line from index `from` on that matches; undefined after timeoutMs or once the process has exited. */
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

  /** Whether `holds` is true now or becomes true at one of the next lines, within timeoutMs. */
  async until(holds: () => boolean, timeoutMs: number): Promise<boolean> {
    return holds() || (await this.waitFor(holds, this.lines.length, timeoutMs)) !== undefined;
  }

  tail(n = 20): string {
    return this.lines
      .slice(-n)
      .map((l) => l.text)
      .join('\n');
  }

  /** Idempotent: SIGTERM, SIGKILL after 20 s, then every process it started that is still alive. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      if (!this.exited) {
        const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
        this.child.kill('SIGTERM');
        if (!(await settlesWithin(exited, 20_000))) {
          this.child.kill('SIGKILL');
          await settlesWithin(exited, 5_000);
        }
      }
      await reap(this.descendants(), 0);
    })());
  }
}
