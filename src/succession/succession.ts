import { GraftError, errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { startSuccessor, type Successor, type UpgradeState } from './upgrade.js';

export interface SuccessionHooks {
  /** The listening sockets and the state a successor starts from, read when the upgrade begins. */
  handover(): Promise<{ listeners: Array<{ key: string; fd: number; handle: unknown }>; state: Omit<UpgradeState, 'from' | 'listeners' | 'masterGeneration'> }>;
  /**
   * Give the control socket to the successor; resolves once it confirms. On
   * failure (the successor is killed) this master must hold the socket again.
   */
  transferControl(successor: Successor): Promise<void>;
  /** The successor is in control: stop accepting connections and commands. */
  stepDown(successor: number): void;
  /** This master's own retirement: drain its workers and release what it holds. */
  shutdown(): Promise<void>;
  readyTimeoutMs: number;
  drainTimeoutMs: number;
}

/**
 * The master as a generation (DESIGN.md: the master process is a generation
 * too), with a life of its own rather than a slot's: nothing leases a master,
 * and handing control over cannot be undone, so it is not a verify that a
 * discard could take back. `graft upgrade` starts a successor beside this
 * master (it starts its own workers on the inherited sockets), then hands it
 * the control socket: if the successor fails before it confirms, it is killed
 * and this master keeps serving; once it confirms, this master steps down,
 * drains and exits. A stop aborts an upgrade that has not handed over yet (the
 * successor stops too) and retires this master. The master's arbiter runs one
 * upgrade at a time.
 */
export class Succession {
  private live: number;
  private running: Promise<{ pid: number }> | undefined;
  private readonly abort = new AbortController();
  private retirement: Promise<void> | undefined;
  private resolveRetired!: () => void;
  /** Resolves once this master has retired: stopped, or drained after handing over to a successor. */
  readonly retired = new Promise<void>((resolve) => (this.resolveRetired = resolve));

  constructor(
    private readonly hooks: SuccessionHooks,
    private readonly log: Logger,
    generation: number,
  ) {
    this.live = generation;
  }

  /** The generation of the master in control: this one, or the successor it handed over to. */
  get generation(): number {
    return this.live;
  }

  get upgrading(): boolean {
    return this.running !== undefined;
  }

  /** Resolves once the successor is in control (this master is then draining). */
  upgrade(): Promise<{ pid: number }> {
    if (this.abort.signal.aborted || this.retirement) return Promise.reject(new GraftError('GRAFT_STOPPING', 'the master is stopping; upgrade refused'));
    if (this.running) return Promise.reject(new GraftError('GRAFT_INTERNAL', 'an upgrade was asked for while one runs; the arbiter runs one at a time'));
    const running = this.handOver().finally(() => (this.running = undefined));
    this.running = running;
    return running;
  }

  /** Stop: abort an upgrade that has not handed over, retire this master, resolve when it is done. */
  async close(): Promise<void> {
    this.abort.abort(new GraftError('GRAFT_STOPPING', 'the master stopped while an upgrade was in flight'));
    await this.running?.catch(() => {});
    await this.retire();
  }

  private async handOver(): Promise<{ pid: number }> {
    const signal = this.abort.signal;
    const version = this.live + 1;
    const { listeners, state } = await this.hooks.handover();
    if (signal.aborted) throw signal.reason;
    this.log.info('upgrade: starting a new master', { masterGeneration: version, listeners: listeners.map((l) => l.key), generation: state.firstGeneration - 1 });
    const successor = await startSuccessor({
      listeners,
      state: { ...state, masterGeneration: version },
      readyTimeoutMs: this.hooks.readyTimeoutMs,
      drainTimeoutMs: this.hooks.drainTimeoutMs,
      signal,
    });
    try {
      if (signal.aborted) throw signal.reason;
      // Control changes hands before anything here retires: if the successor fails to take it, this master keeps serving.
      await this.hooks.transferControl(successor);
    } catch (err) {
      successor.kill();
      throw err;
    }
    // No way back from here, a stop included: the successor serves, and this master retires.
    this.live = version;
    this.hooks.stepDown(successor.pid);
    this.log.info('upgrade: handed over; draining this master', { successor: successor.pid });
    void this.retire();
    return { pid: successor.pid };
  }

  /** This master's retirement, once: shutdown() bounds itself (each worker is killed at the drain timeout). */
  private retire(): Promise<void> {
    this.retirement ??= this.hooks
      .shutdown()
      .catch((err: unknown) => this.log.error('master shutdown failed', errorFields(err)))
      .finally(() => this.resolveRetired());
    return this.retirement;
  }
}
