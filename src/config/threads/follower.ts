import { deserialize } from 'node:v8';
import { BroadcastChannel, receiveMessageOnPort, type MessagePort, threadId, type Worker } from 'node:worker_threads';
import { GraftError, isErrorCode, type SerializedError } from '../../core/errors.js';
import { changedPaths, type Snapshot } from '../snapshot.js';
import type { ListenerFailure } from '../subscriptions.js';
import { BoardState, SnapshotBoard } from './board.js';
import { THREADS_CHANNEL, isConfigMessage, postToHub, type HubMessage } from './messages.js';

/** How long a thread's first read of config.current may block for the main thread to share its config. */
const FIRST_READ_WAIT_MS = 3000;

/** What a follower needs of the store it feeds. */
export interface FollowedStore {
  /** Make a snapshot this thread's live one, now. */
  take(snapshot: Snapshot<unknown>): void;
  /** Run the subscriptions touched by a change. */
  notify(changed: readonly string[], next: unknown, previous: unknown): Promise<ListenerFailure[]>;
  /** Stop this thread's loops (a draining worker). */
  stopLoops(): Promise<void>;
}

/**
 * A worker thread's side of config: its store follows the main thread's.
 * Reads check the board (one atomic load) and take a newer snapshot at once,
 * so a thread never reads an older version than its process after the switch,
 * whatever it is busy with. The main thread's 'published' message then makes
 * the thread run its subscribers, from what they last heard to what it holds
 * (a thread busy through several changes hears one), and acknowledge.
 */
export class ThreadFollower {
  private board = SnapshotBoard.inherited();
  /** The board write this thread holds (0: none). */
  private seq = 0;
  private held: Snapshot<unknown> | undefined;
  /** Why the process has no config to share, when the board says so. */
  private failure: GraftError | undefined;
  /** What the subscribers last heard of: the first snapshot taken, then every change they ran on. */
  private heard: Snapshot<unknown> | undefined;
  private heardSeq = 0;
  private telling = false;
  private tellAgain = false;
  private waited = false;
  private subscribed = false;
  private readonly waiters: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  private readonly fromHub = new BroadcastChannel(THREADS_CHANNEL);

  constructor(private readonly store: FollowedStore) {
    this.fromHub.onmessage = (event) => this.receive(event.data);
    // Config must never keep a thread alive.
    this.fromHub.unref();
    // Joined before the first read of the board: see ThreadHub.publish.
    postToHub({ graft: 'join', thread: threadId, board: this.board !== undefined });
    process.once('exit', () => postToHub({ graft: 'gone', thread: threadId }));
    process.on('worker', (worker: Worker) => {
      const thread = worker.threadId;
      worker.once('exit', () => postToHub({ graft: 'gone', thread }));
    });
    this.catchUp();
  }

  /** config.current in a thread: the held data, once one atomic load has said it is still the newest. */
  current(): unknown {
    if (this.held !== undefined && this.board!.seq === this.seq) return this.held.data;
    this.ensure();
    return this.held!.data;
  }

  /**
   * Before every read: take a newer snapshot if the board holds one. The first
   * read may wait (bounded) for the main thread to share its config.
   */
  ensure(): void {
    this.catchUp();
    if (this.held) return;
    if (!this.waited) {
      this.waited = true;
      this.waitForFirst(Date.now() + FIRST_READ_WAIT_MS);
    }
    if (this.held) return;
    if (this.failure) throw this.failure;
    throw new GraftError(
      'GRAFT_CONFIG_NOT_READY',
      this.board
        ? `config is not loaded in this thread yet: the main thread has not loaded it; await config.ready() before reading config.current`
        : `config is not loaded in this thread: the process's main thread has not shared it (import graft in the main thread before creating threads, it loads the config and shares it); await config.ready() to wait for it`,
    );
  }

  /** The store's subscriptions changed: the main thread waits for this thread on a change only while it has some. */
  subscriptions(count: number): void {
    if (count > 0 === this.subscribed) return;
    this.subscribed = count > 0;
    postToHub({ graft: 'subscribed', thread: threadId, subscribed: this.subscribed });
  }

  /** Resolves once this thread holds a snapshot; rejects with the main thread's reason if it has none to share. */
  ready(): Promise<void> {
    this.catchUp();
    if (this.held) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private waitForFirst(deadline: number): void {
    // No board in this thread's environment data: the main thread answers our join with it.
    while (!this.board && Date.now() < deadline) {
      // A BroadcastChannel is read like a port (Node 15.12+; @types/node 20 lists only MessagePort).
      const m = receiveMessageOnPort(this.fromHub as unknown as MessagePort);
      if (m) this.receive(m.message);
      else sleep(2);
    }
    if (this.board && !this.held) {
      this.board.waitForWrite(Math.max(0, deadline - Date.now()));
      this.catchUp();
    }
  }

  /** Take the board's snapshot if it is newer than the one held. */
  catchUp(): void {
    const board = this.board;
    if (!board || board.seq === this.seq) return;
    const read = board.read();
    if (!read) return;
    this.seq = read.seq;
    if (read.state === BoardState.error) {
      const error = JSON.parse(new TextDecoder().decode(read.bytes)) as SerializedError;
      this.failure = new GraftError(isErrorCode(error.code) ? error.code : 'GRAFT_INTERNAL', error.message);
      // A thread that holds a snapshot keeps it; one that has none is told why.
      if (!this.held) for (const w of this.waiters.splice(0)) w.reject(this.failure);
      return;
    }
    const snapshot = deserialize(read.bytes) as Snapshot<unknown>;
    this.store.take(snapshot);
    this.held = snapshot;
    this.failure = undefined;
    if (!this.heard) {
      // The first snapshot is nothing to tell: it is where this thread starts.
      this.heard = snapshot;
      this.heardSeq = read.seq;
      postToHub({ graft: 'ack', thread: threadId, seq: read.seq, version: snapshot.version, failures: [] });
    }
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  private receive(message: unknown): void {
    if (!isConfigMessage<HubMessage>(message)) return;
    switch (message.graft) {
      case 'board':
        if (!this.board) {
          this.board = SnapshotBoard.adopt(message.buffer);
          this.catchUp();
        }
        break;
      case 'published':
        this.catchUp();
        void this.tell();
        break;
      case 'stop-loops':
        void this.store.stopLoops().finally(() => postToHub({ graft: 'loops-stopped', thread: threadId }));
        break;
    }
  }

  /** Run the subscribers on what changed since they last heard, one change at a time, and acknowledge. */
  private async tell(): Promise<void> {
    if (this.telling) {
      this.tellAgain = true;
      return;
    }
    this.telling = true;
    try {
      do {
        this.tellAgain = false;
        this.catchUp();
        const next = this.held;
        const previous = this.heard;
        const seq = this.seq;
        if (!next || !previous || seq === this.heardSeq) continue;
        const changed = next === previous ? [] : changedPaths(previous.data, next.data);
        const failures = changed.length > 0 ? await this.store.notify(changed, next.data, previous.data) : [];
        if (this.failure) failures.push({ path: '', error: this.failure.message });
        this.heard = next;
        this.heardSeq = seq;
        postToHub({ graft: 'ack', thread: threadId, seq, version: next.version, failures });
      } while (this.tellAgain);
    } finally {
      this.telling = false;
    }
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Block this thread for ms (only while its first read waits for the main thread). */
function sleep(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
