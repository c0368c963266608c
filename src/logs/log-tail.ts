import { existsSync, watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { dirname } from 'node:path';
import { logFiles, type LogFileInfo } from './log-dir.js';
import { LineSplitter } from './line-splitter.js';
import { rotationLockOf } from './log-file.js';

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/** Where the newest complete line of the live file ends: `follow` goes on from there. */
export interface TailPosition {
  ino: number;
  offset: number;
}

/**
 * The last `count` lines of a service's log, across its rotated files
 * (oldest first), read backwards from the end so that a large file costs
 * only what is printed. Only complete lines: a line being written is left
 * for `follow`.
 */
export async function lastLines(file: string, count: number): Promise<{ lines: string[]; position: TailPosition | undefined }> {
  const files = logFiles(file);
  const live = files.at(-1)?.path === file ? files.at(-1) : undefined;
  let position: TailPosition | undefined;
  const lines: string[] = [];
  for (let i = files.length - 1; i >= 0 && (lines.length < count || files[i] === live); i--) {
    const info = files[i]!;
    const { lines: found, end } = await tailOf(info, count - lines.length, info === live);
    if (info === live) position = { ino: info.ino, offset: end };
    lines.unshift(...found);
  }
  return { lines, position };
}

async function tailOf(info: LogFileInfo, count: number, live: boolean): Promise<{ lines: string[]; end: number }> {
  let handle: FileHandle;
  try {
    handle = await open(info.path, 'r');
  } catch {
    return { lines: [], end: 0 }; // rotated away meanwhile
  }
  try {
    let end = info.size;
    const chunks: Buffer[] = [];
    let newlines = 0;
    let start = end;
    let trimmed = !live;
    while (start > 0 && (newlines <= count || !trimmed)) {
      const size = Math.min(CHUNK, start);
      start -= size;
      const chunk = Buffer.alloc(size);
      await handle.read(chunk, 0, size, start);
      if (!trimmed) {
        // The live file may end in a line still being written: it is not ours yet.
        const last = chunk.lastIndexOf(NEWLINE);
        if (last === -1) {
          end = start;
          continue;
        }
        end = start + last + 1;
        chunks.unshift(chunk.subarray(0, last + 1));
        trimmed = true;
      } else chunks.unshift(chunk);
      for (const byte of chunks[0]!) if (byte === NEWLINE) newlines++;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return { lines: lines.slice(Math.max(0, lines.length - count)), end };
  } finally {
    await handle.close();
  }
}

/** How long a follower waits, in all, for graft's writer to finish a rotation before it lists the files anyway (a lock its writer died holding). */
const ROTATION_WAIT_MAX_MS = 2000;
const ROTATION_POLL_MS = 5;

/**
 * The files as they stand between two rotations. A listing is a directory
 * read and a stat per file, and a rotation that renames files meanwhile can
 * hide one from it (stat'ed before it moved in, or after it moved on), which a
 * follower would then skip. graft's writers rename under a lock file
 * (log-file.ts): a listing counts when no rotation held it before or after,
 * and it agrees with the one before it (one another tool made, logrotate's,
 * takes no lock: the agreement alone).
 */
async function steadyFiles(file: string): Promise<LogFileInfo[]> {
  const lock = rotationLockOf(file);
  const deadline = Date.now() + ROTATION_WAIT_MAX_MS;
  const rotating = () => Date.now() < deadline && existsSync(lock);
  let last: LogFileInfo[] | undefined;
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (rotating()) {
      last = undefined;
      await delay(ROTATION_POLL_MS);
      continue;
    }
    const now = logFiles(file);
    if (rotating()) continue;
    if (last && now.length === last.length && now.every((f, i) => f.path === last![i]!.path && f.ino === last![i]!.ino)) return now;
    last = now;
  }
  return last ?? logFiles(file);
}

/** How often the files are looked at when no change event came (fs.watch may miss a rename on some file systems). */
const POLL_MS = 500;

/**
 * Print every line appended to the log after `position`, following the file
 * across rotations: when the live file was renamed, the rest of the file it
 * was is read (by its open descriptor), then every newer file, then the new
 * live one. Runs until the signal aborts.
 */
export async function follow(file: string, position: TailPosition | undefined, print: (line: string) => void, signal: AbortSignal): Promise<void> {
  let current: { handle: FileHandle; ino: number; offset: number; splitter: LineSplitter } | undefined;
  /**
   * Where reading stands, by inode: a rotation renames every file (`.1` becomes
   * `.2` …), so a path says nothing; `done` once that file was read to its end
   * after it stopped being the live one.
   */
  let cursor: { ino: number; offset: number; done: boolean } | undefined = position && { ...position, done: false };

  /** Open a file we listed, unless it was renamed meanwhile (then it is listed again). */
  const openFile = async (info: LogFileInfo, offset: number): Promise<boolean> => {
    let handle: FileHandle;
    try {
      handle = await open(info.path, 'r');
    } catch {
      return false;
    }
    if ((await handle.stat()).ino !== info.ino) {
      await handle.close();
      return false;
    }
    current = { handle, ino: info.ino, offset, splitter: new LineSplitter((line) => print(line.text)) };
    return true;
  };

  const drain = async () => {
    const c = current!;
    const buffer = Buffer.alloc(CHUNK);
    for (;;) {
      const { bytesRead } = await c.handle.read(buffer, 0, CHUNK, c.offset);
      if (bytesRead === 0) break;
      c.offset += bytesRead;
      c.splitter.push(buffer.subarray(0, bytesRead));
    }
    cursor = { ino: c.ino, offset: c.offset, done: false };
  };

  /** The next file to read, from the cursor: the rest of the one it is in, or the one after it. */
  const nextFile = (files: LogFileInfo[]): { info: LogFileInfo; offset: number } | undefined => {
    if (!cursor) {
      const live = files.at(-1);
      return live?.path === file ? { info: live, offset: 0 } : undefined;
    }
    const at = files.findIndex((f) => f.ino === cursor!.ino);
    // Ours was deleted as the oldest: every file left is newer.
    if (at === -1) return files[0] && { info: files[0], offset: 0 };
    if (cursor.done) return files[at + 1] && { info: files[at + 1]!, offset: 0 };
    return { info: files[at]!, offset: cursor.offset };
  };

  const tick = async () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      if (!current) {
        const next = nextFile(await steadyFiles(file));
        if (!next) return;
        if (!(await openFile(next.info, next.offset))) continue; // renamed by a rotation meanwhile
      }
      await drain();
      const live = (await steadyFiles(file)).at(-1);
      if (live?.path === file && live.ino === current!.ino) {
        if (live.size < current!.offset) current!.offset = 0; // truncated by hand
        return;
      }
      // Rotated: the writer closed it before renaming it, so what is left of it is read now; then the next file.
      await drain();
      current!.splitter.end();
      await current!.handle.close();
      cursor = { ...cursor!, done: true };
      current = undefined;
    }
  };

  let running: Promise<void> | undefined;
  let again = false;
  const schedule = () => {
    if (signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = tick()
      .catch(() => {})
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          schedule();
        }
      });
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), () => schedule());
    watcher.on('error', () => {});
  } catch {
    // polling alone
  }
  const timer = setInterval(schedule, POLL_MS);
  schedule();
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(timer);
  watcher?.close();
  await running;
  await current?.handle.close();
}
