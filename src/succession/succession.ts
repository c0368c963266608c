import { Slot } from '../core/slot.js';
import type { Logger } from '../core/log.js';
import { startSuccessor, type Successor, type UpgradeState } from './upgrade.js';

/** A master process as a generation: this one, or the successor it started. */
interface MasterGeneration {
  pid: number;
  successor?: Successor;
}

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
 * The master itself held in a generation slot (DESIGN.md: the master process
 * is a generation too). `graft upgrade` builds a successor beside this master
 * (it starts its own workers on the inherited sockets), and the commit step
 * hands over the control socket; then this master, the previous generation,
 * drains and exits. A stop closes the slot: an upgrade in flight is aborted
 * (the successor is stopped too) and this master retires.
 */
export class Succession {
  private readonly slot: Slot<MasterGeneration, undefined, { pid: number }>;
  private resolveRetired!: () => void;
  /** Resolves once this master has retired: stopped, or drained after handing over to a successor. */
  readonly retired = new Promise<void>((resolve) => (this.resolveRetired = resolve));

  constructor(
    hooks: SuccessionHooks,
    log: Logger,
    generation: number,
  ) {
    this.slot = new Slot<MasterGeneration, undefined, { pid: number }>(
      {
        build: async ({ version, signal }) => {
          const { listeners, state } = await hooks.handover();
          log.info('upgrade: starting a new master', { masterGeneration: version, listeners: listeners.map((l) => l.key), generation: state.firstGeneration - 1 });
          const successor = await startSuccessor({
            listeners,
            state: { ...state, masterGeneration: version },
            readyTimeoutMs: hooks.readyTimeoutMs,
            drainTimeoutMs: hooks.drainTimeoutMs,
            signal,
          });
          return { pid: successor.pid, successor };
        },
        // Control changes hands before anything here retires: if the successor
        // fails to take it, the upgrade fails and this master keeps serving.
        verify: (next) => hooks.transferControl(next.successor!),
        discard: (next) => {
          next.successor?.kill();
        },
        commit: (next) => {
          hooks.stepDown(next.value.pid);
          log.info('upgrade: handed over; draining this master', { successor: next.value.pid });
          return { pid: next.value.pid };
        },
        // Only this process retires here; a successor that took over is not ours to stop.
        // shutdown() bounds itself: each worker is killed at the drain timeout.
        drain: async (g) => {
          if (!g.value.successor) await hooks.shutdown();
        },
        dispose: (g) => {
          if (!g.successor) this.resolveRetired();
        },
      },
      { name: 'master', firstVersion: generation },
    );
    this.slot.adopt({ pid: process.pid }, generation);
  }

  get generation(): number | undefined {
    return this.slot.current?.version;
  }

  get upgrading(): boolean {
    return this.slot.replacing;
  }

  /** Resolves once the successor is in control (this master is then draining). */
  async upgrade(): Promise<{ pid: number }> {
    return (await this.slot.replace()).result;
  }

  /** Stop: abort an upgrade in flight, retire this master, resolve when it is done. */
  close(): Promise<void> {
    return this.slot.close();
  }
}
