import type { Readable } from 'node:stream';
import { formatRecord, prettyFor, setLogSink, type Fields } from '../core/log.js';
import { LineSplitter, type Line } from './line-splitter.js';
import { jsonObject, LineTagger } from './tagged-line.js';
import { LogFile } from './log-file.js';

/** Where a service's lines go: its log file (--log-dir), or the master's stdout and stderr. */
export type LogTarget = { kind: 'file'; file: string; maxBytes: number; maxFiles: number } | { kind: 'stdio' };

export interface WorkerTags {
  generation: number;
  index: number;
  pid: number;
}

/**
 * How long a stop waits, with no line coming, for the pipes of workers that
 * have exited to end (a grandchild may hold them open): time while the pipes
 * are held back for a slow disk does not count.
 */
const FLUSH_WAIT_MS = 1000;

/** However lines keep coming (a grandchild that goes on printing), a stop waits no longer than this for them. */
const FLUSH_MAX_MS = 10_000;

/**
 * The master's one place for a service's lines: its own log records and every
 * line its workers print. Workers' stdout and stderr are pipes to the master;
 * each line is tagged with the worker's generation, index, pid and stream and
 * written whole:
 *
 * - with a log file: as one JSON line in the file (graft's own records go to
 *   stderr too, so a terminal still sees what the master does);
 * - without: the app's stdout lines to the master's stdout and its stderr
 *   lines to the master's stderr, as JSON lines (or short human lines on a
 *   terminal), which is what a container's log collector reads.
 *
 * An app's line that is one JSON object (pino's) stays that object, with the
 * tags spliced in (LineTagger); any other line becomes a record with the text
 * as its `msg`. A worker's own graft records (role `worker`, on its stderr)
 * are passed on as they are.
 */
export class ServiceLog {
  private readonly file: LogFile | undefined;
  private readonly open = new Set<Promise<void>>();
  private readonly sources = new Set<Readable>();
  private paused = false;
  /** When a worker's line last came in. */
  private lastData = 0;
  private readonly errPretty = prettyFor(process.stderr);
  private readonly outPretty = prettyFor(process.stdout);

  constructor(readonly target: LogTarget) {
    this.file =
      target.kind === 'file'
        ? new LogFile(target.file, { maxBytes: target.maxBytes, maxFiles: target.maxFiles, onError: (m) => this.fileFailed(m), onRemoved: (m) => this.fileRemoved(m) })
        : undefined;
  }

  /** graft's own log records: to stderr as before, and to the log file. */
  install(): void {
    if (!this.file) return;
    setLogSink((line, record) => {
      process.stderr.write(line);
      this.file!.write(JSON.stringify(record) + '\n');
    });
  }

  /** Read a worker's stdout and stderr line by line until they end. */
  attach(tags: WorkerTags, stdout: Readable | null | undefined, stderr: Readable | null | undefined): void {
    for (const [stream, source] of [
      ['stdout', stdout],
      ['stderr', stderr],
    ] as const) {
      if (!source) continue;
      const tagger = new LineTagger({ generation: tags.generation, worker: tags.index, pid: tags.pid, stream });
      const splitter = new LineSplitter((line) => this.workerLine(tagger, line));
      this.sources.add(source);
      if (this.paused) source.pause();
      const ended = new Promise<void>((resolve) => {
        const done = () => {
          splitter.end();
          this.sources.delete(source);
          resolve();
        };
        source.once('end', done);
        source.once('error', done);
      });
      this.open.add(ended);
      void ended.then(() => this.open.delete(ended));
      source.on('data', (chunk: Buffer) => {
        this.lastData = Date.now();
        splitter.push(chunk);
      });
    }
  }

  /**
   * Resolves once every worker's pipes have ended (their last lines written),
   * or once no line has come for a moment while none is held back: a
   * grandchild may hold a pipe open. Lines held back while the disk catches
   * up are still to come, not late: a stop that gave up on them then lost the
   * end of what the last workers printed.
   */
  async settled(): Promise<void> {
    if (this.open.size === 0) return;
    const start = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const quiet = new Promise<void>((resolve) => {
      const check = () => {
        const now = Date.now();
        const idle = now - Math.max(start, this.lastData);
        if (now - start >= FLUSH_MAX_MS || (!this.paused && idle >= FLUSH_WAIT_MS)) resolve();
        else timer = setTimeout(check, this.paused ? 50 : FLUSH_WAIT_MS - idle);
      };
      check();
    });
    await Promise.race([Promise.all(this.open), quiet]);
    clearTimeout(timer);
  }

  /** Waits for the workers' last lines, then closes the file; graft's later records go to stderr only. */
  async close(): Promise<void> {
    await this.settled();
    if (!this.file) return;
    setLogSink((line) => process.stderr.write(line));
    await this.file.close();
  }

  private workerLine(tagger: LineTagger, line: Line): void {
    const { stream, pid } = tagger.tags;
    const object = line.partial ? undefined : jsonObject(line.text);
    if (object === undefined) this.write(stream, undefined, tagger.plain(line.text, line.partial));
    else if (stream === 'stderr' && isWorkerRecord(object, pid)) {
      if (this.file) process.stderr.write(formatRecord(object, this.errPretty));
      this.write(stream, line.text, object);
    } else if (this.file === undefined && this.pretty(stream)) this.write(stream, undefined, tagger.record(object));
    else this.write(stream, tagger.json(line.text, object), undefined);
  }

  /** One line, to the file or to the master's stdout or stderr: `json` is its JSON text when it is at hand (not made twice), else `record` is. */
  private write(stream: 'stdout' | 'stderr', json: string | undefined, record: Fields | undefined): void {
    if (this.file?.write((json ?? JSON.stringify(record)) + '\n')) {
      if (this.file.congested) this.pauseUntilDrained();
      return;
    }
    const out = stream === 'stdout' ? process.stdout : process.stderr;
    if (json !== undefined && !this.pretty(stream)) out.write(json + '\n');
    else out.write(formatRecord(record ?? (JSON.parse(json!) as Fields), this.pretty(stream)));
  }

  private pretty(stream: 'stdout' | 'stderr'): boolean {
    return stream === 'stdout' ? this.outPretty : this.errPretty;
  }

  /** The disk is slower than the app: hold the workers' pipes (the app's writes wait) instead of buffering without bound. */
  private pauseUntilDrained(): void {
    if (this.paused) return;
    this.paused = true;
    for (const s of this.sources) s.pause();
    void this.file!.drained().then(() => {
      this.paused = false;
      for (const s of this.sources) s.resume();
    });
  }

  private fileFailed(message: string): void {
    this.say('error', 'log file failed; lines go to stderr until it can be written again', message);
  }

  private fileRemoved(message: string): void {
    this.say('warn', 'log file removed; writing to a new one in its place', message);
  }

  /** Not through the logger: its sink is this very file. */
  private say(level: 'warn' | 'error', msg: string, error: string): void {
    process.stderr.write(formatRecord({ time: new Date().toISOString(), level, role: 'master', pid: process.pid, msg, code: 'GRAFT_LOG_DIR', error }, this.errPretty));
  }
}

/** A worker's graft log record (the worker runtime logs JSON to its stderr), not the app's own output. */
function isWorkerRecord(object: Record<string, unknown>, pid: number): boolean {
  return object.role === 'worker' && object.pid === pid && typeof object.level === 'string';
}
