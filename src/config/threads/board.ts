import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads';

/**
 * The process's live snapshot in shared memory, where every worker thread of
 * the process can read it synchronously at any moment: a thread that starts
 * between two versions reads the newest one, never the one that was live when
 * it was created, and a thread's read after the main thread switched sees the
 * switch (messages alone can't promise either: a thread handles its messages
 * only when its event loop turns, and in no defined order with the app's).
 *
 * A seqlock with one writer, the main thread: the sequence is odd while a
 * write is in progress; a reader copies the bytes and keeps them only if the
 * sequence did not move meanwhile. The sequence counts writes, so it also
 * tells a thread that anything changed (the same version re-validated under
 * the service's schema at boot is a new write with the same version number).
 *
 * The buffer is growable up to MAX_BYTES: it reserves address space, not
 * memory; config files are limited to 1 MB each.
 */
const SEQ = 0;
const VERSION = 1;
const LENGTH = 2;
const STATE = 3;
const HEADER_BYTES = 16;
const INITIAL_BYTES = 64 * 1024;
export const MAX_BYTES = 64 * 1024 * 1024;

/** What the board holds: a serialized snapshot, or why the process has none to share. */
export const BoardState = { empty: 0, snapshot: 1, error: 2 } as const;

/** Where a thread finds the board: environment data, which every new thread inherits from its creator. */
const BOARD_KEY = 'graft.config.board';

/** Growable SharedArrayBuffers (ES2024, in Node 20) are not in the ES2022 lib this project compiles against. */
interface GrowableSharedArrayBuffer extends SharedArrayBuffer {
  grow(byteLength: number): void;
}
const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => GrowableSharedArrayBuffer;

export interface BoardRead {
  seq: number;
  version: number;
  state: number;
  bytes: Uint8Array;
}

export class SnapshotBoard {
  private readonly header: Int32Array;
  /** Length-tracking: follows the buffer when it grows. */
  private readonly data: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, HEADER_BYTES);
  }

  /** The main thread's board, handed to every thread created from now on. */
  static create(): SnapshotBoard {
    const buffer = new GrowableSharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES });
    setEnvironmentData(BOARD_KEY, buffer);
    return new SnapshotBoard(buffer);
  }

  /** The board this thread inherited, if graft was loaded in the process's main thread before this thread was created. */
  static inherited(): SnapshotBoard | undefined {
    const buffer = getEnvironmentData(BOARD_KEY);
    return buffer instanceof SharedArrayBuffer ? new SnapshotBoard(buffer) : undefined;
  }

  /** A board that reached this thread in a message: threads it creates inherit it too. */
  static adopt(buffer: SharedArrayBuffer): SnapshotBoard {
    setEnvironmentData(BOARD_KEY, buffer);
    return new SnapshotBoard(buffer);
  }

  /** How many writes so far (0: nothing written yet). One atomic load: cheap enough for every read of config.current in a thread. */
  get seq(): number {
    return Atomics.load(this.header, SEQ);
  }

  /** Whether `bytes` fit; checked before a change goes live, so that publishing it cannot fail. */
  static fits(length: number): boolean {
    return HEADER_BYTES + length <= MAX_BYTES;
  }

  /** Write (main thread only). Returns the new sequence number. */
  write(state: number, version: number, bytes: Uint8Array): number {
    const needed = HEADER_BYTES + bytes.length;
    if (needed > this.buffer.byteLength) (this.buffer as GrowableSharedArrayBuffer).grow(Math.min(MAX_BYTES, Math.max(needed, this.buffer.byteLength * 2)));
    Atomics.add(this.header, SEQ, 1);
    this.data.set(bytes);
    Atomics.store(this.header, LENGTH, bytes.length);
    Atomics.store(this.header, VERSION, version);
    Atomics.store(this.header, STATE, state);
    const seq = Atomics.add(this.header, SEQ, 1) + 1;
    // A thread may be waiting for the first snapshot (see waitForWrite).
    Atomics.notify(this.header, SEQ);
    return seq;
  }

  /** A consistent copy of what the board holds, or undefined if nothing was written yet. */
  read(): BoardRead | undefined {
    for (let attempt = 0; ; attempt++) {
      const seq = Atomics.load(this.header, SEQ);
      if (seq === 0) return undefined;
      if (seq % 2 === 0) {
        const length = Atomics.load(this.header, LENGTH);
        const version = Atomics.load(this.header, VERSION);
        const state = Atomics.load(this.header, STATE);
        const bytes = this.data.slice(0, length);
        if (Atomics.load(this.header, SEQ) === seq) return { seq, version, state, bytes };
      }
      // A write is in progress (a copy of at most a few MB): let it finish.
      if (attempt > 100) Atomics.wait(this.header, SEQ, Atomics.load(this.header, SEQ), 1);
    }
  }

  /** Block this thread until the first write, at most ms. Threads only (the main thread writes). */
  waitForWrite(ms: number): void {
    if (this.seq === 0) Atomics.wait(this.header, SEQ, 0, ms);
  }
}
