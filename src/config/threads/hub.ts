import { serialize } from 'node:v8';
import { BroadcastChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { GraftError, errorMessage } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import type { Snapshot } from '../snapshot.js';
import { listenerFailureFields, type ListenerFailure } from '../subscriptions.js';
import { loopHooks } from './loop-hooks.js';
import { BoardState, MAX_BYTES, SnapshotBoard } from './board.js';
import { HUB_CHANNEL, THREADS_CHANNEL, isConfigMessage, type HubMessage, type ThreadMessage } from './messages.js';

/** A snapshot made ready for the board in the build step, so that publishing it cannot fail. */
export interface Staged {
  version: number;
  state: number;
  bytes: Uint8Array;
}

/** The change whose acknowledgements the hub collects (the store runs one change at a time). */
interface Settling {
  seq: number;
  version: number;
  /** Threads whose acknowledgement is still awaited. */
  pending: Set<number>;
  failures: ListenerFailure[];
  done(): void;
}

export interface HubHooks {
  /** A thread wants config the process has not loaded yet: load it now (a process without a master loads on first read). */
  load(): void;
}

/**
 * The main thread's side of config in worker threads. Every snapshot the
 * store makes live is written to the board at the instant the main thread
 * switches (so every thread's next read sees it too), and the change is
 * acknowledged only once every live thread with subscribers (config.on, a
 * loop) has run them on it, or has exited, or has been busy for longer than
 * the change may wait (then that is reported as the thread's failure, like a
 * subscriber that timed out: the thread already reads the new snapshot, its
 * subscribers run when it is free). A thread without subscribers holds the
 * new version by reading the board: nothing to wait for.
 *
 * Threads are members from their join (sent before their first read of the
 * board) until they exit: the thread that created them reports it (through
 * process' 'worker' event), and so does a thread that ends cleanly.
 */
export class ThreadHub {
  private readonly board = SnapshotBoard.create();
  /**
   * Live threads that imported graft: the highest board write each acknowledged
   * (0: none yet), whether it has subscribers, and whether it let a change
   * time out: such a thread (busy, or gone without graft hearing of it) is not
   * waited for again until it answers.
   */
  private readonly members = new Map<number, { acked: number; subscribed: boolean; silent: boolean }>();
  private settling: Settling | undefined;
  /** Threads that started a loop, and the stop of their loops in progress (a draining worker). */
  private readonly looping = new Set<number>();
  private stopping: { pending: Set<number>; done(): void } | undefined;
  private readonly fromThreads = new BroadcastChannel(HUB_CHANNEL);
  private readonly toThreads = new BroadcastChannel(THREADS_CHANNEL);
  /** Made when first used: a warm worker loads this before its environment says it is a worker. */
  private logger: Logger | undefined;
  private get log(): Logger {
    return (this.logger ??= createLogger({ role: process.env.GRAFT_ENTRY ? 'worker' : 'app' }));
  }

  constructor(private readonly hooks: HubHooks) {
    this.fromThreads.onmessage = (event) => this.receive(event.data);
    // Config must never keep a process alive.
    this.fromThreads.unref();
    this.toThreads.unref();
    process.on('worker', (worker: Worker) => this.track(worker));
  }

  /**
   * Build step: the snapshot as threads will read it. A snapshot that can't be
   * handed to threads (a value the schema produced that can't be cloned, or
   * over the board's size) is refused while threads hold config; with none,
   * it goes live in the main thread and a thread that starts later is told why
   * it has none.
   */
  stage(snapshot: Snapshot<unknown>): Staged {
    let bytes: Uint8Array;
    try {
      bytes = serialize({ ...snapshot });
      if (!SnapshotBoard.fits(bytes.length)) throw new Error(`it is ${(bytes.length / 1024 / 1024).toFixed(1)} MB once serialized, over the ${MAX_BYTES / 1024 / 1024} MB threads can share`);
    } catch (err) {
      const error = new GraftError('GRAFT_CONFIG_INVALID', `config version ${snapshot.version} from ${snapshot.source} cannot be handed to worker threads: ${errorMessage(err)}`);
      if (this.members.size > 0) throw error;
      return this.failure(snapshot.version, error);
    }
    return { version: snapshot.version, state: BoardState.snapshot, bytes };
  }

  /**
   * Commit step, run synchronously as the main thread switches: from here on a
   * read of config.current in any thread returns this snapshot. Returns the
   * board's write number, to settle().
   */
  publish(staged: Staged): number {
    const seq = this.board.write(staged.state, staged.version, staged.bytes);
    // Joins posted before this write are from threads that may hold the
    // previous snapshot: read them now, so that settle() waits for them too.
    this.drain();
    this.post({ graft: 'published', seq });
    return seq;
  }

  /** Resolves with the threads' subscriber failures once every live thread acknowledged write `seq`, or after timeoutMs. */
  settle(seq: number, version: number, timeoutMs: number): Promise<ListenerFailure[]> {
    const pending = new Set([...this.members].filter(([, m]) => m.subscribed && !m.silent && m.acked < seq).map(([thread]) => thread));
    if (pending.size === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const failures: ListenerFailure[] = [];
      const timer = setTimeout(() => {
        for (const thread of settling.pending) {
          const member = this.members.get(thread);
          if (member) member.silent = true;
          failures.push({ path: '', thread, code: 'GRAFT_THREAD_BUSY', error: `thread ${thread} did not take config version ${version} within ${timeoutMs} ms (busy?); it reads the new version already, its subscribers run when it is free` });
        }
        settling.done();
      }, timeoutMs);
      timer.unref();
      const settling: Settling = {
        seq,
        version,
        pending,
        failures,
        done: () => {
          clearTimeout(timer);
          if (this.settling === settling) this.settling = undefined;
          resolve(failures);
        },
      };
      this.settling = settling;
    });
  }

  /** A draining worker: the loops running in threads stop like the main thread's (their running iteration finishes). */
  stopLoops(): Promise<void> {
    this.drain();
    if (this.looping.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.stopping = { pending: new Set(this.looping), done: resolve };
      this.post({ graft: 'stop-loops' });
    });
  }

  private failure(version: number, error: GraftError): Staged {
    return { version, state: BoardState.error, bytes: new TextEncoder().encode(JSON.stringify(error.toJSON())) };
  }

  private track(worker: Worker): void {
    // threadId reads -1 once the thread has exited.
    const thread = worker.threadId;
    worker.once('exit', () => {
      // Whatever it posted before it exited is queued: handle that first, then forget it.
      this.drain();
      this.left(thread);
    });
  }

  private drain(): void {
    // Node reads a BroadcastChannel with receiveMessageOnPort (since 15.12); @types/node 20 lists only MessagePort.
    for (let m = receiveMessageOnPort(this.fromThreads as unknown as MessagePort); m; m = receiveMessageOnPort(this.fromThreads as unknown as MessagePort)) this.receive(m.message);
  }

  private post(message: HubMessage): void {
    this.toThreads.postMessage(message);
  }

  private receive(message: unknown): void {
    if (!isConfigMessage<ThreadMessage>(message)) return;
    switch (message.graft) {
      case 'join':
        this.joined(message.thread, message.board);
        break;
      case 'subscribed':
        this.subscribed(message.thread, message.subscribed);
        break;
      case 'ack':
        this.acked(message);
        break;
      case 'gone':
        this.left(message.thread);
        break;
      case 'loop':
        this.looping.add(message.thread);
        loopHooks.loopStarted();
        break;
      case 'loops-stopped':
        this.loopsStopped(message.thread);
        break;
    }
  }

  private joined(thread: number, hasBoard: boolean): void {
    if (!this.members.has(thread)) this.members.set(thread, { acked: 0, subscribed: false, silent: false });
    if (!hasBoard) this.post({ graft: 'board', buffer: this.board.buffer });
    if (this.board.seq === 0) {
      try {
        this.hooks.load();
      } catch (err) {
        // The thread waiting for its first snapshot gets the reason instead.
        const error = err instanceof GraftError ? err : new GraftError('GRAFT_CONFIG_NOT_READY', `the process could not load its config: ${errorMessage(err)}`);
        if (this.board.seq === 0) this.publish(this.failure(0, error));
      }
    }
  }

  private subscribed(thread: number, subscribed: boolean): void {
    const member = this.members.get(thread);
    if (!member) return;
    member.subscribed = subscribed;
    // Subscribed after the change was published: its subscribers hear it anyway; the change need not wait.
    // Unsubscribed: nothing left to wait for.
    const settling = this.settling;
    if (!subscribed && settling?.pending.delete(thread) && settling.pending.size === 0) settling.done();
  }

  private acked(message: Extract<ThreadMessage, { graft: 'ack' }>): void {
    const { thread, seq, failures } = message;
    const member = this.members.get(thread);
    if (!member) return;
    member.acked = Math.max(member.acked, seq);
    member.silent = false;
    const settling = this.settling;
    const annotated = failures.map((f) => ({ ...f, thread }));
    if (settling?.pending.has(thread) && seq >= settling.seq) {
      settling.failures.push(...annotated);
      settling.pending.delete(thread);
      if (settling.pending.size === 0) settling.done();
    } else {
      // Late: its change was settled without it (it was busy).
      for (const f of annotated) this.log.error('config listener failed', listenerFailureFields(message.version, f));
    }
  }

  private left(thread: number): void {
    this.members.delete(thread);
    this.looping.delete(thread);
    const settling = this.settling;
    if (settling?.pending.delete(thread) && settling.pending.size === 0) settling.done();
    this.loopsStopped(thread);
  }

  private loopsStopped(thread: number): void {
    const stopping = this.stopping;
    if (stopping?.pending.delete(thread) && stopping.pending.size === 0) {
      this.stopping = undefined;
      stopping.done();
    }
  }
}
