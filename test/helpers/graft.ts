import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { builtPackage, graftBin } from '../../bench/lib/built.js';
import { freePort } from '../../bench/lib/http.js';
import { sendControl } from '../../src/control/client.js';
import type { ControlRequest } from '../../src/control/protocol.js';
import { record, tempDir } from './output.js';

export { builtPackage, freePort, tempDir };

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const cliPath = join(root, 'src/cli/main.ts');
/** Absolute, so a test may run graft from any working directory. */
export const tsxImport = import.meta.resolve('tsx');
export const fixture = (name: string) => join(root, 'test/fixtures', name);

/** GRAFT_TEST_SOURCE=1: the tests run graft from its TypeScript source (through tsx) instead of as installed. */
const fromSource = process.env.GRAFT_TEST_SOURCE === '1';
let built = false;

/**
 * The command that runs graft in the tests: as a user installs it, bin/graft.js on the built dist/ (which
 * builtPackage() first brings up to date with src/, so no test runs stale code), with no tsx in its keeper,
 * masters, workers and commands: tsx costs each of those processes half a second of CPU, the suite's largest
 * cost on two cores. GRAFT_TEST_SOURCE=1 runs the source instead, with its stack traces.
 */
export function graftCommand(options: { built?: boolean } = {}): string[] {
  if (fromSource && !options.built) return [process.execPath, '--import', tsxImport, cliPath];
  if (!built) builtPackage();
  built = true;
  return [process.execPath, graftBin];
}

export interface LogRecord {
  msg: string;
  level: string;
  pid: number;
  [key: string]: unknown;
}

/** A real `graft start` process, its JSON log, and helpers to wait on it. */
export class GraftProcess {
  readonly logs: LogRecord[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly socket: string,
  ) {
    const source = `graft ${child.pid}`;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      record(source, line);
      this.output.push(line);
      try {
        this.logs.push(JSON.parse(line) as LogRecord);
      } catch {
        // app output or a CLI error line
      }
      for (const w of this.waiters.splice(0)) w();
    });
    // The workers' lines, tagged by the master (JSON when not a TTY): records too, so a test can wait for what its app prints.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      record(source, line);
      this.output.push(line);
      try {
        const parsed = JSON.parse(line) as LogRecord;
        // An app's own JSON line may have no msg: only records the tests can match on.
        if (typeof parsed?.msg === 'string') this.logs.push(parsed);
      } catch {
        // not a JSON line
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** The keeper's pid: `graft start` itself, which stays for the service's whole life. */
  get pid(): number {
    return this.child.pid!;
  }

  /** The pid of the master the keeper started first (its first log record names it). */
  async firstMaster(): Promise<number> {
    return (await this.waitForLog((r) => r.role === 'master')).pid;
  }

  /** Wait until the keeper saw this master exit (a master that handed over drains and exits on its own). */
  async masterExit(pid: number, timeoutMs = 30_000): Promise<{ code: number | null; signal: string | null }> {
    const r = await this.waitForLog((l) => l.role === 'keeper' && l.msg === 'master exited' && l.master === pid, timeoutMs);
    return { code: r.exitCode as number | null, signal: r.signal as string | null };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Wait until the app holds `count` requests named `name` in flight (test/fixtures/held.ts): its workers announced them. */
  async held(name: string, count = 1): Promise<void> {
    const arrived = (r: LogRecord) => r.msg === `held request ${name} arrived`;
    await this.waitForLog(() => this.logs.filter(arrived).length >= count);
  }

  /** Let the app answer the held request `name`. */
  release(name: string): void {
    writeFileSync(join(dirname(this.socket), 'held', name), '');
  }

  /** Wait until a log record matches (checks records already received too). */
  async waitForLog(match: (r: LogRecord) => boolean, timeoutMs = 20_000, from = 0): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for a log record; last lines:\n${this.output.slice(-15).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Bounded above graft's own readiness bound (--timeout, 30 s by default): a start that fails says so in the log first. */
  waitRunning(): Promise<LogRecord> {
    return this.waitForLog((r) => r.msg === 'master running', 60_000);
  }

  cli(...args: string[]): Promise<CliResult> {
    return graftCli([...args, '--socket', this.socket]);
  }

  /** One request over the control socket, as the CLI sends it (several may be in flight at once). */
  control(request: ControlRequest): Promise<unknown> {
    return sendControl(this.socket, request);
  }

  /**
   * What `graft status --json` prints (the master's status answer, as is), asked over the control socket:
   * tests poll it, and a CLI process per poll costs a second of CPU. The CLI's own output is tested where it is the subject.
   */
  async status(): Promise<StatusJson> {
    return (await this.control({ cmd: 'status' })) as StatusJson;
  }

  /** Stop it (graceful), and make sure nothing is left behind. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

export interface StatusJson {
  master: {
    pid: number;
    keeper?: number;
    generation: number;
    /** The live generation's code version. */
    code?: string;
    masterGeneration: number;
    desired: number;
    actual: number;
    busy?: string;
    queued: number;
    state: string;
    crashLoop: boolean;
    /** What graft stopped repairing in the live generation (--max-restarts used up, memory churn). */
    degraded: Array<{ code: string; generation: number; since: string; message: string }>;
    reloading: boolean;
    lastReload?: { at: string; outcome: 'ok' | 'failed' | 'abandoned'; reason: string; generation?: number; previous?: number; code?: string; error?: string };
    /** Ids of the bus orders carried out lately, newest last (--bus). */
    orders?: string[];
    config?: { version: number; hash: string; source: string; lastRejected?: { version: number; code?: string; error?: string; source: string } };
  };
  workers: Array<{ pid: number; generation: number; index: number; state: string; restarts: number; served: number; inFlight: number; connections: number; rss: number; configVersion: number }>;
}

export interface StartOptions {
  /** Run graft as this user (root tests that need a permission to be denied). */
  uid?: number;
  /** Worker count for -w; 0 leaves -w out (the config's graft.workers or the default applies). */
  workers?: number;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Leave --socket out: the master takes its default paths (GRAFT_RUNTIME_DIR, cwd, entry). */
  defaultSocket?: boolean;
  /** A command graft start runs under, e.g. `unshare --pid --fork` to make it a PID namespace's init. */
  prefix?: string[];
  /** Run graft as installed (bin/graft.js, the built dist/, no tsx anywhere) even under GRAFT_TEST_SOURCE=1; see graftCommand(). */
  built?: boolean;
  /** The command that runs graft, e.g. `npx --no graft` in a project that installed it (instead of this repository's graft). */
  command?: string[];
}

export function startGraft(entry: string, options: StartOptions = {}): Promise<GraftProcess> {
  return (async () => {
    const port = await freePort();
    const sockDir = tempDir('graft-sock-');
    if (options.uid !== undefined) chownSync(sockDir, options.uid, options.uid);
    const socket = join(sockDir, 'control.sock');
    // Where the tests release the requests an app holds (test/fixtures/held.ts).
    const heldDir = join(sockDir, 'held');
    mkdirSync(heldDir);
    const graft = options.command ?? graftCommand(options);
    const command = [...graft, 'start', entry, ...(options.workers === 0 ? [] : ['-w', String(options.workers ?? 2)]), '-p', String(port), ...(options.defaultSocket ? [] : ['--socket', socket]), ...(options.args ?? [])];
    const [file, ...args] = [...(options.prefix ?? []), ...command];
    const child = spawn(
      file!,
      args,
      {
        cwd: options.cwd ?? root,
        // Its own runtime directory (service registry, default paths) unless the test shares one: masters
        // of one fixture run side by side in tests as on separate hosts, and never meet the user's services.
        env: { ...process.env, GRAFT_LOG_FORMAT: 'json', GRAFT_RUNTIME_DIR: sockDir, HELD_DIR: heldDir, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(options.uid !== undefined ? { uid: options.uid, gid: options.uid } : {}),
      },
    );
    return new GraftProcess(child, port, socket);
  })();
}

/**
 * One master for the tests of a file (or of a describe, where it is called) that need no process of their own:
 * started running when a test first asks for it, stopped after the last one, also when it never became ready.
 * Tests that share it count from the state they find (generation, config version), not from a fresh start.
 */
export function sharedGraft(entry: string, options: StartOptions = {}): () => Promise<GraftProcess> {
  let started: GraftProcess | undefined;
  let running: Promise<GraftProcess> | undefined;
  after(() => started?.stop());
  return () =>
    (running ??= startGraft(entry, options).then(async (g) => {
      started = g;
      await g.waitRunning();
      return g;
    }));
}

/** An entry started with one config file (`app.yaml` in a fresh folder, holding `text`) as its --config. */
export async function startWithConfigFile(entry: string, text: string, options: StartOptions = {}): Promise<{ g: GraftProcess; dir: string; file: string }> {
  const dir = tempDir();
  const file = join(dir, 'app.yaml');
  writeFileSync(file, text);
  const g = await startGraft(entry, { ...options, args: ['--config', file, ...(options.args ?? [])] });
  return { g, dir, file };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A `graft start` that failed: its `graft:` line, and no stack printed. */
export async function failedStart(g: GraftProcess): Promise<string> {
  const exit = await g.exited;
  assert.equal(exit.code, 1);
  assert.equal(g.output.filter((l) => /^\s+at /.test(l)).length, 0, 'no stack trace printed');
  return g.output.find((l) => l.startsWith('graft: ')) ?? '';
}

/**
 * A failed command as a user sees it: a non-zero exit, one `graft: CODE: …`
 * line (matching pattern), no stack trace; with alone, nothing else on stderr
 * (a failed `graft start` may log before it). Returns the line.
 */
export function oneLineError(r: CliResult, code: string, pattern?: RegExp, options: { alone?: boolean } = {}): string {
  assert.notEqual(r.code, 0, 'must exit non-zero');
  const lines = r.stderr.split('\n').filter((l) => (options.alone ? l.length > 0 : l.startsWith('graft: ')));
  assert.equal(lines.length, 1, r.stderr);
  const line = lines[0]!;
  assert.ok(line.startsWith(`graft: ${code}: `), line);
  if (pattern) assert.match(line, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  return line;
}

/**
 * The runtime directory of CLI commands that name none: this test file's own, so that no command of a test
 * meets the user's services or those of another test file running at the same time.
 */
const cliRuntimeDir = tempDir('graft-rt-');

/** A graft command run to its end; `command` runs another graft than this repository's (see StartOptions). */
export function graftCli(args: string[], options: { cwd?: string; env?: Record<string, string>; uid?: number; command?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const [file, ...graft] = options.command ?? graftCommand();
    const child = spawn(file!, [...graft, ...args], {
      cwd: options.cwd ?? root,
      env: { ...process.env, GRAFT_LOG_FORMAT: 'json', GRAFT_RUNTIME_DIR: cliRuntimeDir, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('exit', (code) => {
      record(`cli ${args[0] ?? ''}`, `exit ${code}\n${stdout}${stderr}`);
      resolve({ code, stdout, stderr });
    });
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait until only `generation` has workers left (the older ones drained and exited). */
export function onlyGeneration(g: GraftProcess, generation: number, timeoutMs = 30_000): Promise<StatusJson> {
  return waitFor(
    async () => {
      const s = await g.status();
      return s.workers.length > 0 && s.workers.every((w) => w.generation === generation) ? s : undefined;
    },
    timeoutMs,
    `only generation ${generation} to be left`,
  );
}

export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
