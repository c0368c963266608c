import { fstatSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage } from '../core/errors.js';
import { tryLock } from '../core/lock-file.js';

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

/** The lock file graft's writers hold while they rename a log's files (a follower waits for it to go: log-tail.ts). */
export function rotationLockOf(path: string): string {
  return `${path}.rotating`;
}

/** A rotation lock older than this was left by a master that died rotating (no rotation takes nearly as long). */
const ROTATION_STALE_MS = 15_000;

/** How often a master whose batch filled the file looks whether the other master's rotation of it is done. */
const ROTATION_WAIT_MS = 10;

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
 * their lines whole), and either rotates the file once its batch finds it
 * past the size, every writer's lines counted: whichever writes, the file is
 * rotated (the draining predecessor's workers may write on long after the
 * successor took control). One rotates at a time, under a lock file beside
 * the log (`name.log.rotating`); a master that finds it taken leaves the
 * rotation to its holder, and one that takes it rotates only a file still
 * past the size, so a file is never renamed over another nor cut twice. So
 * that neither writes on into a file the other renamed away, each looks at
 * the path before each batch and opens it again when it names another file.
 */
export class LogFile {
  private handle: FileHandle | undefined;
  /** The inode the open handle writes to. */
  private ino = 0;
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
  ) {
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
   * made again and a new file opened there, and graft says so once. A file
   * briefly gone while the other master rotates (its lock taken) is not
   * removed.
   */
  private checkPresent(): void {
    if (this.pumping || !this.handle || !this.gone()) return;
    this.removed();
  }

  /**
   * No file at the path, and no rotation under way that would explain it.
   * The path is looked at again after the lock: a rotation that ended in
   * between let the lock go only once its new file was there.
   */
  private gone(): boolean {
    return !exists(this.path) && !exists(this.lockPath) && !exists(this.path);
  }

  private get lockPath(): string {
    return rotationLockOf(this.path);
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

  /** Writes the queue, one batch at a time, until it is empty, rotating the file as it passes the size; opens the file first when none is open. */
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
          if (fstatSync(this.handle!.fd).size >= this.options.maxBytes) await this.rotate();
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
      if (now === undefined && this.gone()) this.removed();
      else this.letGo();
    }
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const handle = await open(this.path, 'a', 0o600);
    this.handle = handle;
    this.ino = fstatSync(handle.fd).ino;
  }

  /**
   * Under the rotation lock: name.log.N-2 → name.log.N-1, …, name.log →
   * name.log.1; what was name.log.N-1 is replaced, so dropped. Then a new
   * name.log, before the lock is let go: the other master never finds the
   * path empty outside a rotation. With the lock taken, the other master is
   * rotating this very file: this one writes on once it is done.
   */
  private async rotate(): Promise<void> {
    for (;;) {
      const release = tryLock(this.lockPath, ROTATION_STALE_MS);
      if (release) {
        try {
          // The other master may have rotated since this one's batch: only a file still past the size goes.
          if (this.pastSize()) await this.renameAll();
        } finally {
          release();
        }
        return;
      }
      // The other master is renaming this very file: the next batch waits for the new one, or this one would grow on.
      await delay(ROTATION_WAIT_MS);
      if (!this.pastSize()) return;
    }
  }

  private pastSize(): boolean {
    return (sizeOf(this.path) ?? 0) >= this.options.maxBytes;
  }

  private async renameAll(): Promise<void> {
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
    await this.follow();
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

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}
