import type { Fields } from '../core/log.js';

/** Where a line came from: graft's tags on every line a worker prints. */
export interface LineTags {
  generation: number;
  worker: number;
  pid: number;
  stream: 'stdout' | 'stderr';
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * The line as a JSON object, if it is exactly one: it starts with `{`, ends
 * with `}` and parses. The two character checks keep the parse off every
 * plain line; the parse is the check that a `{…}` line is valid JSON (no
 * splice into text that is not). A validator in JavaScript that builds
 * nothing was tried: on the master's lines (slices of a pipe's chunk) it took
 * as long as JSON.parse (about 0.6 µs for a pino line), so the parse stays,
 * and gives the keys the splice checks for free.
 */
export function jsonObject(text: string): Record<string, unknown> | undefined {
  if (text.charCodeAt(0) !== OPEN_BRACE || text.charCodeAt(text.length - 1) !== CLOSE_BRACE) return undefined;
  try {
    // Starts with `{` and parses whole: an object, never an array or a scalar.
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Puts graft's tags on a worker's lines, for one worker's stream.
 *
 * A line that is one JSON object (an app's pino or bunyan line) stays that
 * object: the tags are spliced in as its first keys, and the app's text
 * follows unchanged, neither escaped nor re-encoded. When the app's object
 * has no `time`, the master's receive time is added, so every line of a log
 * has one; an app's own `time` (pino's epoch milliseconds) is kept as it is.
 *
 * A key of the app's that a tag also uses: the tags are graft's word on
 * where the line came from, so they are always there, at the top level,
 * unchanged, and a filter on `generation` or `pid` holds for every line.
 * - pino's `pid`, the worker's own: written once, the line still spliced.
 * - Any other such key: the line is re-encoded (JSON with a key twice would
 *   leave it to each reader which one wins), with the tags, then the app's
 *   keys; the app's value under `app_<key>` (`app_app_<key>` if that is
 *   taken too), or dropped if it equals the tag.
 *
 * Any other line (plain text, a `{` line that is not valid JSON, a piece of
 * an over-long line) becomes a record with the text as its `msg`.
 */
export class LineTagger {
  /** `{"generation":1,"worker":0,"pid":123,"stream":"stdout"`, and the same without the pid. */
  private readonly head: string;
  private readonly headWithoutPid: string;

  constructor(readonly tags: LineTags) {
    const { generation, worker, pid, stream } = tags;
    this.head = `{"generation":${generation},"worker":${worker},"pid":${pid},"stream":"${stream}"`;
    this.headWithoutPid = `{"generation":${generation},"worker":${worker},"stream":"${stream}"`;
  }

  /** `text`, one JSON object (jsonObject gave `object`), with the tags: one JSON object line, without its newline. */
  json(text: string, object: Record<string, unknown>): string {
    // JSON has no undefined: `!== undefined` is "the app has this key" (none of these names is on Object.prototype).
    const appPid = object.pid;
    if (object.generation !== undefined || object.worker !== undefined || object.stream !== undefined || (appPid !== undefined && appPid !== this.tags.pid)) {
      return JSON.stringify(this.record(object));
    }
    const head = appPid === undefined ? this.head : this.headWithoutPid;
    const time = object.time === undefined ? `,"time":"${new Date().toISOString()}"` : '';
    return head + time + (isEmptyObject(text) ? '}' : ',' + text.slice(1));
  }

  /** A line that is not one JSON object, as a record (`partial` marks a piece of an over-long line). */
  plain(text: string, partial: boolean): Fields {
    const { generation, worker, pid, stream } = this.tags;
    const record: Fields = { time: new Date().toISOString(), generation, worker, pid, stream, msg: text };
    if (partial) record.partial = true;
    return record;
  }

  /** The app's object with the tags, as a record (for a terminal's short lines, and for a key the tags use). */
  record(object: Record<string, unknown>): Fields {
    // No prototype: an app's `__proto__` key stays a key.
    const record = Object.create(null) as Fields;
    Object.assign(record, this.tags);
    if (object.time === undefined) record.time = new Date().toISOString();
    for (const key of Object.keys(object)) {
      const value = object[key];
      let name = key;
      if (Object.hasOwn(this.tags, key)) {
        if (value === record[key]) continue;
        do name = `app_${name}`;
        while (Object.hasOwn(record, name) || Object.hasOwn(object, name));
      }
      record[name] = value;
    }
    return record;
  }
}

/** `{}`, with or without blanks inside (the text is known to be one valid JSON object). */
function isEmptyObject(text: string): boolean {
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === CLOSE_BRACE) return true;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return false;
}
