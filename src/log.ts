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
const pretty = process.env.GRAFT_LOG_FORMAT === 'pretty' || (process.env.GRAFT_LOG_FORMAT !== 'json' && process.stderr.isTTY === true);

let sink: (line: string) => void = (line) => process.stderr.write(line);

/** Where log lines go (stderr unless a test collects them). */
export function setLogSink(write: (line: string) => void): void {
  sink = write;
}

function write(level: Level, base: Fields, msg: string, fields?: Fields): void {
  if (LEVELS[level] < threshold) return;
  const record: Fields = { time: new Date().toISOString(), level, ...base, msg, ...fields };
  if (record.err instanceof Error) record.err = { message: record.err.message, stack: record.err.stack, code: (record.err as { code?: unknown }).code };
  let line: string;
  if (pretty) {
    const { time, level: _l, msg: _m, role, pid, ...rest } = record;
    const extra = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    line = `${String(time).slice(11, 23)} ${level.toUpperCase().padEnd(5)} [${role ?? 'graft'} ${pid}] ${msg}${extra ? ' ' + extra : ''}\n`;
  } else {
    line = JSON.stringify(record) + '\n';
  }
  sink(line);
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
