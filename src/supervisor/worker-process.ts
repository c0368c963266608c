import type { Worker } from 'node:cluster';
import { GraftError, type SerializedError } from '../errors.js';
import { isGraftMessage, type MasterMessage, type WorkerReply, type WorkerRequest, type WorkerRequestBody, type WorkerStats, type WorkerMessage } from '../ipc.js';

export type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

export interface WorkerExit {
  code: number | null;
  signal: string | null;
}

export interface WorkerStatus extends WorkerStats {
  pid: number;
  generation: number;
  index: number;
  state: WorkerState;
  uptimeMs: number;
  restarts: number;
}

/**
 * The master's view of one worker process: its state, its last heartbeat,
 * and promises for its readiness and its exit.
 */
export class WorkerProcess {
  state: WorkerState = 'starting';
  readonly startedAt = Date.now();
  lastHeartbeat = Date.now();
  listening = false;
  stats: WorkerStats = { inFlight: 0, served: 0, connections: 0, rss: 0, configVersion: 0 };
  /** Answers the worker's hello: messages sent before it listens would be lost. */
  onHello: (() => void) | undefined;
  /** Key paths the service lists in restartOn (reported when ready). */
  restartOn: string[] = [];
  bootError: SerializedError | undefined;
  /** Set by the pool when it retires this worker on purpose. */
  retiring = false;
  readonly ready: Promise<void>;
  readonly exited: Promise<WorkerExit>;
  /** Resolves once the worker has closed its listeners (or is gone). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private resolveReady!: () => void;
  private nextRid = 1;
  private readonly pendingReplies = new Map<number, (reply: WorkerReply) => void>();
  private rejectReady!: (err: GraftError) => void;

  constructor(
    readonly worker: Worker,
    readonly generation: number,
    readonly index: number,
    readonly restarts: number,
    readyTimeoutMs: number,
    entry: string,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
    const timer = setTimeout(() => {
      this.rejectReady(
        new GraftError(
          'GRAFT_READY_TIMEOUT',
          `worker ${this.pid} (generation ${generation}) was not ready within ${readyTimeoutMs} ms: ${entry} ${this.listening ? 'listens but its ready() did not resolve' : 'never started listening'}; raise --timeout or fix the entry`,
        ),
      );
    }, readyTimeoutMs);
    timer.unref();
    this.ready.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );

    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // send() on a channel that just closed reports ERR_IPC_CHANNEL_CLOSED as an
    // 'error' event; unheard, it would take the master down. 'exit' follows.
    worker.on('error', () => {});

    worker.on('message', (message: unknown) => {
      if (!isGraftMessage<WorkerMessage>(message)) return;
      switch (message.graft) {
        case 'hello':
          this.onHello?.();
          break;
        case 'listening':
          this.listening = true;
          break;
        case 'ready':
          this.state = this.state === 'starting' ? 'ready' : this.state;
          this.stats = { ...this.stats, configVersion: message.configVersion };
          this.restartOn = message.restartOn;
          this.lastHeartbeat = Date.now();
          this.resolveReady();
          break;
        case 'boot-error':
          this.bootError = message.error;
          break;
        case 'heartbeat': {
          const { graft: _g, ...stats } = message;
          this.stats = stats;
          this.lastHeartbeat = Date.now();
          break;
        }
        case 'reply': {
          const waiter = this.pendingReplies.get(message.rid);
          this.pendingReplies.delete(message.rid);
          waiter?.(message);
          break;
        }
        case 'closed':
          this.resolveClosed();
          break;
        case 'drained':
          this.stats = { ...this.stats, served: message.served, inFlight: 0, connections: 0 };
          // Every handoff sent before this message was answered on the way: the worker may go.
          this.send({ graft: 'exit' });
          break;
      }
    });

    this.exited = new Promise((resolve) => {
      worker.once('exit', (code: number | null, signal: string | null) => {
        this.state = 'exited';
        this.resolveClosed();
        const reason = this.bootError
          ? GraftError.from(this.bootError)
          : new GraftError(
              'GRAFT_WORKER_EXITED',
              `worker ${this.pid} (generation ${generation}) exited before it was ready (${signal ? `signal ${signal}` : `code ${code}`}); see its output above`,
            );
        this.rejectReady(reason);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.worker.process.pid ?? -1;
  }

  get alive(): boolean {
    return this.state !== 'exited';
  }

  /** Stop taking connections, finish what is in flight, exit. */
  drain(options: { idleCloseMs: number; lingerMs: number }): void {
    if (!this.alive || this.state === 'draining') return;
    this.state = 'draining';
    this.retiring = true;
    if (!this.send({ graft: 'drain', ...options })) this.kill();
  }

  private send(message: MasterMessage): boolean {
    if (!this.worker.isConnected()) return false;
    try {
      this.worker.send(message, undefined, () => {});
      return true;
    } catch {
      return false;
    }
  }

  /** Send a request and wait for its reply; rejects if the worker dies or does not answer in time. */
  request(message: WorkerRequestBody, timeoutMs: number): Promise<WorkerReply> {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.pendingReplies.delete(rid);
        reject(new GraftError('GRAFT_CONFIG_APPLY_FAILED', `worker ${this.pid} (generation ${this.generation}) ${why}`));
      };
      const timer = setTimeout(() => fail(`did not answer ${message.graft} within ${timeoutMs} ms`), timeoutMs);
      timer.unref();
      void this.exited.then(() => {
        clearTimeout(timer);
        fail('exited before answering');
      });
      this.pendingReplies.set(rid, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      const unreachable = () => {
        clearTimeout(timer);
        fail('cannot be reached');
      };
      if (!this.worker.isConnected()) return unreachable();
      try {
        this.worker.send({ ...message, rid } as WorkerRequest, undefined, (err: Error | null) => {
          if (err) unreachable();
        });
      } catch {
        unreachable();
      }
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.alive) return;
    try {
      this.worker.process.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Drain, and kill whatever is left after timeoutMs. Resolves when the process is gone. */
  async retire(options: { idleCloseMs: number; lingerMs: number; timeoutMs: number }): Promise<boolean> {
    this.retiring = true;
    if (!this.alive) return false;
    // A worker that never listened has no connections to finish.
    if (!this.listening) this.kill();
    else this.drain(options);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.kill();
    }, options.timeoutMs);
    timer.unref();
    await this.exited;
    clearTimeout(timer);
    return timedOut;
  }

  status(): WorkerStatus {
    return {
      pid: this.pid,
      generation: this.generation,
      index: this.index,
      state: this.state,
      uptimeMs: Date.now() - this.startedAt,
      restarts: this.restarts,
      ...this.stats,
    };
  }
}
