import { BroadcastChannel } from 'node:worker_threads';
import type { ListenerFailure } from '../subscriptions.js';

/**
 * What the main thread and the worker threads of one process tell each other
 * about config, on two BroadcastChannels (process-wide by name, so a thread
 * needs nothing handed to it: a piscina pool's threads or a thread created by
 * another thread reach the main thread just the same).
 *
 * Why broadcast and not a MessagePort per thread: a port can only reach a
 * thread through a channel that already exists (parentPort belongs to the app,
 * and piscina speaks its own protocol on it), while a BroadcastChannel is
 * found by name. One channel per direction: the main thread's messages are
 * for every thread; a thread's are for the main thread only, and it opens its
 * end just to post (an end that stays open receives every other thread's
 * posts, and keeps them queued unless it listens).
 */
export const HUB_CHANNEL = 'graft:config:hub';
export const THREADS_CHANNEL = 'graft:config:threads';

/** From a thread to the main thread. */
export type ThreadMessage =
  /** This thread imported graft (board: it found the board in its environment data). Sent before it reads the board. */
  | { graft: 'join'; thread: number; board: boolean }
  /**
   * This thread has subscribers (config.on, a loop) or has none left. Only a
   * thread with subscribers has anything to do on a change: the others read
   * the new snapshot from the board by themselves, so a change does not wait
   * for them (a piscina thread parked in Atomics.wait between tasks, say).
   * Sent before the first subscription is added, after the last is removed.
   */
  | { graft: 'subscribed'; thread: number; subscribed: boolean }
  /** This thread holds the board's write `seq` (or a later one) and its subscribers ran for it. */
  | { graft: 'ack'; thread: number; seq: number; version: number; failures: ListenerFailure[] }
  /** A thread exited: sent by itself on a clean exit, and by the thread that created it. */
  | { graft: 'gone'; thread: number }
  /** A loop() started in a thread: a job worker whose loops all run in threads is ready too. */
  | { graft: 'loop'; thread: number }
  /** This thread's loops have stopped (answers 'stop-loops'). */
  | { graft: 'loops-stopped'; thread: number };

/** From the main thread to every thread. */
export type HubMessage =
  /** The board holds a new write: run your subscribers and acknowledge it. */
  | { graft: 'published'; seq: number }
  /** The board, for threads created before graft was loaded in the main thread (they have none in their environment data). */
  | { graft: 'board'; buffer: SharedArrayBuffer }
  /** The worker drains: stop your loops (the running iteration finishes) and say so. */
  | { graft: 'stop-loops' };

export function isConfigMessage<M extends ThreadMessage | HubMessage>(value: unknown): value is M {
  return typeof value === 'object' && value !== null && typeof (value as { graft?: unknown }).graft === 'string';
}

/** Post to the main thread, opening this thread's end of the channel only for the post. */
export function postToHub(message: ThreadMessage): void {
  const channel = new BroadcastChannel(HUB_CHANNEL);
  try {
    channel.postMessage(message);
  } finally {
    channel.close();
  }
}
