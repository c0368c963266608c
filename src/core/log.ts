import { isMainThread, threadId } from 'node:worker_threads';
import type { ErrorCode } from './errors.js';

/**
 * Structured logging: one JSON object per line when stderr is not a TTY (for
 * collectors), a short human line when it is. Every record names the role and
 * pid; callers add the generation or version they act on, and a failure's code
 * from the one table in errors.ts.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Fields {
  code?: ErrorCode | undefined;
  [key: string]: unknown;
}

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const threshold = LEVELS[(process.env.GRAFT_LOG_LEVEL as Level) ?? 'info'] ?? LEVELS.info;

/** Human lines for a terminal, JSON lines for everything else (GRAFT_LOG_FORMAT forces one). */
export function prettyFor(stream: { isTTY?: boolean }): boolean {
  return process.env.GRAFT_LOG_FORMAT === 'pretty' || (process.env.GRAFT_LOG_FORMAT !== 'json' && stream.isTTY === true);
}

const pretty = prettyFor(process.stderr);

/** Where log lines go: the formatted line for stderr, and the record itself (a log file stores it as JSON). */
export type LogSink = (line: string, record: Fields) => void;

let sink: LogSink = (line) => process.stderr.write(line);

/** Where log lines go (stderr unless a test collects them, or the master writes them to its log file too). */
export function setLogSink(write: LogSink): void {
  sink = write;
}

/**
 * One record as a line. Pretty: `time LEVEL [role pid] msg key=value…`; a line
 * of the app's own output (it has a `stream`) is `time OUT|ERR [generation #worker pid] text`.
 */
export function formatRecord(record: Fields, asPretty: boolean): string {
  if (!asPretty) return JSON.stringify(record) + '\n';
  const time = clock(record.time);
  if (typeof record.stream === 'string') {
    // An app's JSON line (pino's) shows its msg and its other keys, like a record of graft's.
    const { time: _t, generation, worker, pid, stream, msg, partial: _p, ...rest } = record;
    const tag = stream === 'stderr' ? 'ERR' : 'OUT';
    return `${time} ${tag.padEnd(5)} [g${String(generation)} #${String(worker)} ${String(pid)}] ${msg === undefined ? '' : String(msg)}${extras(rest)}\n`;
  }
  const { time: _t, level, msg, role, pid, ...rest } = record;
  return `${time} ${String(level).toUpperCase().padEnd(5)} [${String(role ?? 'graft')} ${String(pid)}] ${String(msg)}${extras(rest)}\n`;
}

/** hh:mm:ss.mmm of an ISO time (graft's) or of epoch milliseconds (pino's; 8.64e15 is the last a Date holds). */
function clock(time: unknown): string {
  if (typeof time === 'string') return time.slice(11, 23);
  if (typeof time === 'number' && Math.abs(time) <= 8.64e15) return new Date(time).toISOString().slice(11, 23);
  return '';
}

function extras(fields: Fields): string {
  const extra = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return extra ? ' ' + extra : '';
}

function write(level: Level, base: Fields, msg: string, fields?: Fields): void {
  if (LEVELS[level] < threshold) return;
  const record: Fields = { time: new Date().toISOString(), level, ...base, msg, ...fields };
  if (record.err instanceof Error) record.err = { message: record.err.message, stack: record.err.stack, code: (record.err as { code?: unknown }).code };
  sink(formatRecord(record, pretty), record);
}

/** In a worker thread, every record names the thread too. */
const thread = isMainThread ? {} : { thread: threadId };

export function createLogger(base: Fields): Logger {
  const full = { pid: process.pid, ...thread, ...base };
  return {
    debug: (m, f) => write('debug', full, m, f),
    info: (m, f) => write('info', full, m, f),
    warn: (m, f) => write('warn', full, m, f),
    error: (m, f) => write('error', full, m, f),
    child: (f) => createLogger({ ...full, ...f }),
  };
}
