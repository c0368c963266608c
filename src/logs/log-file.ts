import { fstatSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { errorMessage } from '../core/errors.js';

export interface LogFileOptions {
  /** Rotate once the file reaches this many bytes (--log-max-size). */
  maxBytes: number;
  /** How many files at most, the live one included (--log-max-files): the oldest is deleted. */
  maxFiles: number;
  /** A failure of the file (disk full, the directory unwritable): said once on stderr, whatever the sink. */
  onError: (message: string) => void;
  /** The file was removed under graft and a new one opened in its place. */
  onRemoved: (message: string) => void;
}

/** After a failure, how long the lines go to stderr before the file is opened again. */
const REOPEN_MS = 5000;

/** How often an idle file is looked for on disk: removed (its directory too), it is made again. */
const PRESENCE_MS = 1000;

/** Lines are handed to the disk in batches of up to this many characters (and at most a 32nd of the rotation size). */
const BATCH_MAX = 64 * 1024;

/** How much may wait in memory for the disk before the workers' pipes are paused. */
const QUEUE_MAX = 1024 * 1024;

/**
 * One service's log file, rotated by size the classical way (`name.log` →
 * `name.log.1` → … → `name.log.N-1`, the oldest dropped). A batch is one
 * append, so a line is whole in exactly one file.
 *
 * Lines are batched: the lines written in one turn of the event loop (one
 * chunk of a worker's pipe) go to the disk as one write, at the end of that
 * turn or once the batch reaches its size; one write at a time, in order. A
 * file may so end up to a batch past --log-max-size (a 32nd of it, 64 KiB at
 * most) instead of one line.
 *
 * Two masters append to the same file during `graft upgrade` (O_APPEND keeps
 * their lines whole), and only the one in control rotates: a successor
 * appends without rotating until it takes control, and a master that handed
 * over stops rotating (`rotating(false)`). So that neither writes on into a
 * file the other renamed away, each looks at the path before each batch and
 * opens it again when it names another file. And the one that rotates counts
 * the file's size on disk, every writer's lines included.
 */
export class LogFile {
  private handle: FileHandle | undefined;
  /** The inode the open handle writes to. */
  private ino = 0;
  private rotates: boolean;
  private brokenUntil = 0;
  private batch = '';
  private flushQueued = false;
  private readonly batchMax: number;
  /** Batches waiting for the disk, oldest first, and their characters in all. */
  private readonly queue: string[] = [];
  private queued = 0;
  private pumping: Promise<void> | undefined;
  private readonly presence: NodeJS.Timeout;

  constructor(
    readonly path: string,
    private readonly options: LogFileOptions,
    rotating: boolean,
  ) {
    this.rotates = rotating;
    this.batchMax = Math.max(1, Math.min(BATCH_MAX, Math.floor(options.maxBytes / 32)));
    this.pump();
    this.presence = setInterval(() => this.checkPresent(), PRESENCE_MS);
    this.presence.unref();
  }

  /**
   * A file removed under a running service (its directory deleted, an `rm`
   * by hand, a log shipper that moves it away) would take every later line
   * into a file nobody can open, as an open descriptor keeps writing to it.
   * Before each batch, and once a second while idle: gone, the directory is
   * made again and a new file opened there, and graft says so once. Only the
   * master that rotates says so: for the other, a file briefly gone is the
   * rotating master's rename.
   */
  private checkPresent(): void {
    if (this.pumping || !this.handle || !this.rotates || exists(this.path)) return;
    this.removed();
  }

  private removed(): void {
    this.options.onRemoved(`${this.path} was removed while graft wrote to it`);
    this.letGo();
  }

  /** Appends one whole line (with its newline); false if it could not go to the file (the caller writes it elsewhere). */
  write(line: string): boolean {
    if (Date.now() < this.brokenUntil) return false;
    this.batch += line;
    if (this.batch.length >= this.batchMax) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
    return true;
  }

  /** The batch to the disk's queue (lost if the file fails before it is written, like every batch queued then). */
  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.batch === '') return;
    this.queue.push(this.batch);
    this.queued += this.batch.length;
    this.batch = '';
    this.pump();
  };

  /** Start or stop rotating; the next batch follows the file's path either way. */
  rotating(on: boolean): void {
    this.flush();
    this.rotates = on;
  }

  /** Every line written so far is in the file. */
  async close(): Promise<void> {
    clearInterval(this.presence);
    this.flush();
    this.brokenUntil = Infinity;
    await this.pumping;
    this.letGo();
  }

  /**
   * Lines wait in memory for the disk: the app's output should pause until
   * `drained`.
   */
  get congested(): boolean {
    return this.queued + this.batch.length >= QUEUE_MAX;
  }

  /** Resolves once every line given so far has been written (or lost with a failed file). */
  async drained(): Promise<void> {
    this.flush();
    while (this.pumping) await this.pumping;
  }

  /** Writes the queue, one batch at a time, until it is empty; opens the file first when none is open. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = (async () => {
      try {
        await this.follow();
        while (this.queue.length > 0) {
          const chunk = this.queue[0]!;
          await this.follow();
          await this.handle!.appendFile(chunk);
          this.queue.shift();
          this.queued -= chunk.length;
          if (this.rotates && fstatSync(this.handle!.fd).size >= this.options.maxBytes) await this.rotate();
        }
      } catch (err) {
        this.failed(err);
      } finally {
        this.pumping = undefined;
      }
    })();
  }

  /** The handle writes to the file the path names now: opened (its directory made) when none is, or when the path names another file. */
  private async follow(): Promise<void> {
    if (this.handle) {
      const now = inode(this.path);
      if (now === this.ino) return;
      if (now === undefined && this.rotates) this.removed();
      else this.letGo();
    }
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const handle = await open(this.path, 'a', 0o600);
    this.handle = handle;
    this.ino = fstatSync(handle.fd).ino;
  }

  /** name.log.N-2 → name.log.N-1, …, name.log → name.log.1; what was name.log.N-1 is replaced, so dropped. */
  private async rotate(): Promise<void> {
    this.letGo();
    const dir = dirname(this.path);
    const name = basename(this.path);
    const present = new Set(await readdir(dir));
    for (let index = this.options.maxFiles - 1; index > 0; index--) {
      const from = index === 1 ? name : `${name}.${index - 1}`;
      if (!present.has(from)) continue;
      try {
        await rename(`${dir}/${from}`, `${dir}/${name}.${index}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /** The file failed (disk full, directory unwritable): the lines queued are lost; the next ones go elsewhere until the file opens again. */
  private failed(err: unknown): void {
    this.letGo();
    this.queue.length = 0;
    this.queued = 0;
    this.batch = '';
    if (this.brokenUntil !== Infinity) this.brokenUntil = Date.now() + REOPEN_MS;
    this.options.onError(`${this.path}: ${errorMessage(err)}`);
  }

  private letGo(): void {
    const handle = this.handle;
    this.handle = undefined;
    this.ino = 0;
    void handle?.close().catch(() => undefined);
  }
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  return inode(path) !== undefined;
}
