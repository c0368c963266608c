import type { Worker } from 'node:cluster';
import type { Socket } from 'node:net';
import { GraftError, type SerializedError } from '../core/errors.js';
import type { RestartReason } from '../observe/observers.js';
import { isGraftMessage, type MasterMessage, type ReadyMode, type WorkerReply, type WorkerRequest, type WorkerRequestBody, type WorkerStats, type WorkerMessage } from '../core/ipc.js';

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

interface PendingRequest {
  what: string;
  timer: NodeJS.Timeout;
  resolve(reply: WorkerReply): void;
  reject(err: GraftError): void;
}

/**
 * The master's view of one worker process: its state, its last heartbeat,
 * its requests in flight, and promises for its readiness and its exit.
 */
export class WorkerProcess {
  state: WorkerState = 'starting';
  readonly startedAt = Date.now();
  /** When it reported ready: how long it served, when it crashes, decides whether the crash was unstable (--min-uptime). */
  readyAt: number | undefined;
  lastHeartbeat = Date.now();
  listening = false;
  /** Where its servers listen, once they do (a job worker has none). */
  address: string | undefined;
  stats: WorkerStats = { inFlight: 0, served: 0, connections: 0, rss: 0, configVersion: 0 };
  /** Answers the worker's hello: messages sent before it listens would be lost. */
  onHello: (() => void) | undefined;
  /** Called after each heartbeat updated `stats` (the pool's --max-memory watch). */
  onHeartbeat: (() => void) | undefined;
  /** Key paths the service lists in restartOn (reported when ready). */
  restartOn: string[] = [];
  bootError: SerializedError | undefined;
  /** It reported that it has drained: no connection may be handed to it any more. */
  drained = false;
  /** Set by the pool when it retires this worker on purpose. */
  retiring = false;
  /** Set by the pool when it kills this worker to replace it (a blocked loop): its death is not a crash. */
  killedFor: RestartReason | undefined;
  readonly ready: Promise<void>;
  readonly exited: Promise<WorkerExit>;
  /** Resolves once the worker has closed its listeners (or is gone). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private resolveReady!: () => void;
  private rejectReady!: (err: GraftError) => void;
  private readonly rearm: () => void;
  private nextRid = 1;
  private readonly pending = new Map<number, PendingRequest>();

  constructor(
    readonly worker: Worker,
    readonly generation: number,
    readonly index: number,
    readonly restarts: number,
    readyTimeoutMs: number,
    entry: string,
    readyMode: ReadyMode = 'auto',
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
    // The bound is the app's: it counts from the moment the worker runtime is
    // up and starts loading the entry ('hello'), so a busy machine's slow node
    // startup is not charged to the app. Startup itself has the same bound.
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.rejectReady(
          new GraftError(
            'GRAFT_READY_TIMEOUT',
            `worker ${this.pid} (generation ${generation}) was not ready within ${readyTimeoutMs} ms: ${entry} ${notReady(readyMode, this.listening)}; raise --timeout or fix the entry`,
          ),
        );
      }, readyTimeoutMs);
      timer.unref();
    };
    arm();
    this.rearm = arm;
    this.ready.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );

    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    worker.on('message', (message: unknown) => {
      if (isGraftMessage<WorkerMessage>(message)) this.receive(message);
    });

    this.exited = new Promise((resolve) => {
      // send() on a channel that just closed reports ERR_IPC_CHANNEL_CLOSED as an 'error' event; unheard,
      // it would take the master down, and 'exit' follows. A process that could not be started at all
      // (EMFILE: the master is out of file descriptors, EAGAIN) reports only 'error': it counts as exited.
      worker.on('error', (err: NodeJS.ErrnoException) => {
        if (worker.process.pid !== undefined || this.state === 'exited') return;
        this.bootError ??= new GraftError('GRAFT_WORKER_EXITED', `a worker of generation ${generation} could not be started (${err.code ?? err.message}); it is retried like a crash`);
        // Through the process, so node:cluster's own bookkeeping (cluster.workers) lets go of it too.
        worker.process.emit('exit', null, null);
      });
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
        for (const rid of [...this.pending.keys()]) this.fail(rid, 'exited before answering');
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

  private receive(message: WorkerMessage): void {
    switch (message.graft) {
      case 'hello':
        if (this.state === 'starting') this.rearm();
        this.onHello?.();
        break;
      case 'listening':
        this.listening = true;
        if (message.address) this.address = message.address;
        break;
      case 'ready':
        this.state = this.state === 'starting' ? 'ready' : this.state;
        this.stats = { ...this.stats, configVersion: message.configVersion };
        this.restartOn = message.restartOn;
        this.lastHeartbeat = Date.now();
        this.readyAt ??= this.lastHeartbeat;
        this.resolveReady();
        break;
      case 'boot-error':
        this.bootError = message.error;
        break;
      case 'heartbeat': {
        const { graft: _g, ...stats } = message;
        this.stats = stats;
        this.lastHeartbeat = Date.now();
        this.onHeartbeat?.();
        break;
      }
      case 'reply': {
        const request = this.pending.get(message.rid);
        if (!request) break;
        this.pending.delete(message.rid);
        clearTimeout(request.timer);
        request.resolve(message);
        break;
      }
      case 'closed':
        this.resolveClosed();
        break;
      case 'drained':
        this.drained = true;
        this.stats = { ...this.stats, served: message.served, inFlight: 0, connections: 0 };
        // Every handoff sent before this message was answered on the way: the worker may go.
        this.send({ graft: 'exit' });
        break;
    }
  }

  /** A message that needs no answer; false if the worker can't be reached. */
  send(message: MasterMessage): boolean {
    if (!this.worker.isConnected()) return false;
    try {
      this.worker.send(message, undefined, () => {});
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Hand it an accepted connection (`--sticky`) with the bytes the master read
   * of it; false if it can't take one (the caller chooses again). The socket is
   * closed in the master once the worker has it.
   */
  handOver(key: string, head: Buffer | undefined, socket: Socket): boolean {
    if (!this.alive || this.drained || !this.worker.isConnected()) return false;
    try {
      this.worker.send({ graft: 'connection', key, ...(head?.length ? { head: head.toString('base64') } : {}) }, socket, { keepOpen: false }, (err) => {
        if (err) socket.destroy();
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Send a request and wait for its reply; rejects (GRAFT_WORKER_UNREACHABLE) if the worker dies or does not answer in time. */
  request(message: WorkerRequestBody, timeoutMs: number): Promise<WorkerReply> {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(rid, `did not answer ${message.graft} within ${timeoutMs} ms`), timeoutMs);
      timer.unref();
      this.pending.set(rid, { what: message.graft, timer, resolve, reject });
      if (!this.alive || !this.worker.isConnected()) return this.fail(rid, 'cannot be reached');
      try {
        this.worker.send({ ...message, rid } as WorkerRequest, undefined, (err: Error | null) => {
          if (err) this.fail(rid, 'cannot be reached');
        });
      } catch {
        this.fail(rid, 'cannot be reached');
      }
    });
  }

  private fail(rid: number, why: string): void {
    const request = this.pending.get(rid);
    if (!request) return;
    this.pending.delete(rid);
    clearTimeout(request.timer);
    request.reject(new GraftError('GRAFT_WORKER_UNREACHABLE', `worker ${this.pid} (generation ${this.generation}) ${why} (${request.what})`));
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.alive) return;
    try {
      this.worker.process.kill(signal);
    } catch {
      // already gone
    }
  }

  /**
   * Stop taking connections, finish what is in flight, exit; killed if the
   * deadline aborts first. Resolves once the process is gone, true if it was killed.
   */
  async retire(deadline: AbortSignal, options: { idleCloseMs: number; lingerMs: number }): Promise<boolean> {
    this.retiring = true;
    if (!this.alive) return false;
    // A worker that never listened has no connections to finish.
    if (!this.listening) this.kill();
    else if (this.state !== 'draining') {
      this.state = 'draining';
      if (!this.send({ graft: 'drain', ...options })) this.kill();
    }
    let killed = false;
    const onDeadline = () => {
      killed = true;
      this.kill();
    };
    if (deadline.aborted) onDeadline();
    else deadline.addEventListener('abort', onDeadline, { once: true });
    await this.exited;
    deadline.removeEventListener('abort', onDeadline);
    return killed;
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

/** Why a worker is not ready yet, in the words of its --ready mode. */
function notReady(mode: ReadyMode, listening: boolean): string {
  if (listening) return 'listens but its ready() did not resolve';
  if (mode === 'message') return "never sent process.send('ready') (--ready message)";
  if (mode === 'listen') return 'never started listening (--ready listen)';
  return 'never started listening';
}
