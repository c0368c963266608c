import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import { basename, dirname } from 'node:path';
import { errorMessage } from '../core/errors.js';

export interface LogFileOptions {
  /** Rotate once the file reaches this many bytes (--log-max-size). */
  maxBytes: number;
  /** How many files at most, the live one included (--log-max-files): the oldest is deleted. */
  maxFiles: number;
  /** A failure of the file (disk full, the directory removed): said once on stderr, whatever the sink. */
  onError: (message: string) => void;
}

/** After a failure, how long the lines go to stderr before the file is opened again. */
const REOPEN_MS = 5000;

/** Lines are handed to the stream in batches of up to this many characters (and at most a 32nd of the rotation size). */
const BATCH_MAX = 64 * 1024;

/** How much may wait in memory for the disk before the workers' pipes are paused. */
const QUEUE_MAX = 1024 * 1024;

/**
 * One service's log file, rotated by size the classical way (`name.log` →
 * `name.log.1` → … → `name.log.N-1`, the oldest dropped) by rotating-file-stream.
 * The stream never splits a write across files, so a line is whole in
 * exactly one file.
 *
 * Lines are batched: rotating-file-stream awaits one file write per chunk it
 * is given, so a write per line cost the master a thread-pool round trip per
 * line (about 30 µs; an app logging 20k lines a second saturated it). The
 * lines written in one turn of the event loop (one chunk of a worker's pipe)
 * go to the stream as one write, at the end of that turn or once the batch
 * reaches its size. A file may so end up to a batch past --log-max-size (a
 * 32nd of it, 64 KiB at most) instead of one line.
 *
 * Only the master in control rotates. During `graft upgrade` two masters
 * append to the same file (O_APPEND keeps their lines whole); if both rotated,
 * each by its own count of bytes, files would be rotated twice. So a
 * successor appends without rotating until it takes control, and a master
 * that handed over stops rotating (`rotating(false)`).
 */
export class LogFile {
  private stream: RotatingFileStream | undefined;
  private rotates: boolean;
  private brokenUntil = 0;
  private readonly closing: Array<Promise<void>> = [];
  private batch = '';
  private flushQueued = false;
  private readonly batchMax: number;

  constructor(
    readonly path: string,
    private readonly options: LogFileOptions,
    rotating: boolean,
  ) {
    this.rotates = rotating;
    this.batchMax = Math.max(1, Math.min(BATCH_MAX, Math.floor(options.maxBytes / 32)));
    this.stream = this.open();
  }

  /** Appends one whole line (with its newline); false if it could not go to the file (the caller writes it elsewhere). */
  write(line: string): boolean {
    if (!this.stream) {
      if (Date.now() < this.brokenUntil) return false;
      this.stream = this.open();
    }
    this.batch += line;
    if (this.batch.length >= this.batchMax) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
    return true;
  }

  /** The batch to the stream (lost with the stream if it failed meanwhile, as lines inside the stream are). */
  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.batch === '') return;
    this.stream?.write(this.batch);
    this.batch = '';
  };

  /** Start or stop rotating: the stream is replaced by one with (or without) a size limit; lines stay in order within each. */
  rotating(on: boolean): void {
    if (on === this.rotates) return;
    this.rotates = on;
    this.flush();
    this.retire(this.stream);
    this.stream = this.open();
  }

  /** Every line written so far is in the file. */
  async close(): Promise<void> {
    this.flush();
    this.retire(this.stream);
    this.stream = undefined;
    this.brokenUntil = Infinity;
    await Promise.all(this.closing);
  }

  private open(): RotatingFileStream {
    const stream = createStream((index: number | Date | null) => (typeof index === 'number' && index > 0 ? `${basename(this.path)}.${index}` : basename(this.path)), {
      path: dirname(this.path),
      mode: 0o600,
      ...(this.rotates ? { size: `${this.options.maxBytes}B`, rotate: this.options.maxFiles - 1 } : {}),
    });
    stream.on('error', (err: Error) => {
      // rotating-file-stream is closed after an error: the next lines go elsewhere until the file opens again.
      if (this.stream === stream) {
        this.stream = undefined;
        this.brokenUntil = Date.now() + REOPEN_MS;
      }
      this.options.onError(`${this.path}: ${errorMessage(err)}`);
    });
    stream.on('warning', (err: Error) => this.options.onError(`${this.path}: ${errorMessage(err)}`));
    return stream;
  }

  /**
   * Lines wait in memory for the disk: the app's output should pause until
   * `drained`. Not at the stream's own mark (16 KiB, less than one batch),
   * which would pause the pipes after every batch and leave the disk idle
   * while the master reads and the master idle while the disk writes.
   */
  get congested(): boolean {
    return this.stream !== undefined && this.stream.writableLength + this.batch.length >= QUEUE_MAX;
  }

  /** Resolves once the stream has written every line it was given. */
  drained(): Promise<void> {
    this.flush();
    const stream = this.stream;
    if (!stream?.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      stream.once('drain', done);
      stream.once('close', done);
    });
  }

  private retire(stream: RotatingFileStream | undefined): void {
    if (!stream || stream.destroyed) return;
    this.closing.push(
      new Promise<void>((resolve) => {
        stream.once('close', () => resolve());
        stream.once('finish', () => resolve());
        stream.once('error', () => resolve());
        stream.end();
      }),
    );
  }
}
