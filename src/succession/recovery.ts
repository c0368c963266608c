import { readFileSync, rmSync } from 'node:fs';
import { replacePrivateFile } from '../core/private-file.js';
import { errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { graftVersion } from '../core/version.js';
import type { InheritedListener, ListenerRegistry } from '../net/listeners.js';
import { dropAtKeeper, FIRST_LISTENER_FD, holdAtKeeper } from './keeper-link.js';
import type { Takeover } from './standby.js';
import type { UpgradeState } from './upgrade.js';

/**
 * A master crash is a restart, not an outage. The master keeps what a planned
 * upgrade would hand over (config version, overrides, history, bus replay
 * memory, carried orders, metrics, activity) current in a state file, and
 * gives its keeper a copy of every listening socket. When the master in
 * control dies without being asked to, the keeper starts a new one at once on
 * those sockets (connections wait in the kernel's backlog meanwhile), which
 * starts from the state file: this module is both ends of that file and of the
 * environment the keeper passes.
 */
export type SavedState = Omit<UpgradeState, 'from' | 'listeners'>;

interface StateDocument {
  graft: string;
  pid: number;
  state: SavedState;
}

/** Set by the keeper on a master it starts after a crash. */
export const RECOVER_ENV = 'GRAFT_RECOVER';

/** What the keeper tells the master it starts after a crash. */
export interface RecoverOrder {
  /** The master that died. */
  from: number;
  /** How many times the keeper has restarted a master of this service. */
  restarts: number;
  /** The kept listening sockets, in the order of their fds from 4 on. */
  listeners: string[];
}

export class StateFile {
  private last = '';

  constructor(readonly path: string) {}

  /** Write the state if it changed (atomically: a crash mid-write leaves the previous one). */
  save(state: SavedState): void {
    const text = JSON.stringify({ graft: graftVersion(), pid: process.pid, state } satisfies StateDocument);
    if (text === this.last) return;
    replacePrivateFile(this.path, text);
    this.last = text;
  }

  /** A planned stop: nothing to recover from. */
  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/**
 * A master under a keeper, ready to crash: the keeper holds a copy of each of
 * its listening sockets (following them as node:cluster opens and closes
 * them), and the state file holds what to carry on from, written after every
 * command the master carries out (before its asker is answered: what a client
 * was told is done survives), which is where that state changes.
 */
export class CrashReadiness {
  private readonly file: StateFile;
  private failed = false;

  constructor(
    private readonly options: {
      stateFile: string;
      listeners: ListenerRegistry;
      /** What a restarted master would carry on from, read now. */
      state: () => Promise<SavedState>;
      /** False once the master stops or hands over: nothing more to keep. */
      running: () => boolean;
      log: Logger;
    },
  ) {
    this.file = new StateFile(options.stateFile);
  }

  /** Resolves once the keeper's copies are on their way and the first state is written. */
  async start(): Promise<void> {
    const { listeners } = this.options;
    await holdAtKeeper(listeners.list());
    // A listener node:cluster closed (its last worker died) is let go of, so the replacement can bind
    // the port again; a new one is held too.
    listeners.onChange = ({ key, listening }) => {
      if (!this.options.running()) return;
      if (listening) void holdAtKeeper(listeners.list());
      else dropAtKeeper(key);
    };
    await this.save();
  }

  /** Write the state if it changed. */
  async save(): Promise<void> {
    if (!this.options.running()) return;
    try {
      this.file.save(await this.options.state());
      this.failed = false;
    } catch (err) {
      if (!this.failed) this.options.log.warn('cannot write the state file a restart after a crash would start from', { code: 'GRAFT_STATE_FILE', file: this.file.path, ...errorFields(err) });
      this.failed = true;
    }
  }

  /** A stop ends the service: nothing to restart from. */
  remove(): void {
    this.file.remove();
  }
}

export interface Recovery {
  order: RecoverOrder;
  /** The kept listening sockets, as this process inherited them. */
  listeners: InheritedListener[];
  /** The dead master's state, with the kept sockets: undefined when its state file is missing, corrupt or of another version (a clean start on the kept sockets). */
  state: UpgradeState | undefined;
  /** Why the state was not used, when it was not. */
  cleanStart?: string;
}

/**
 * In a master the keeper started after a crash, or its standby that took over
 * (takeover): the order and the state to start from (undefined for any other
 * master).
 */
export function takeRecovery(stateFile: string, takeover?: Takeover): Recovery | undefined {
  const raw = process.env[RECOVER_ENV];
  delete process.env[RECOVER_ENV]; // workers must not inherit it
  if (!raw && !takeover) return undefined;
  const order = takeover?.order ?? (JSON.parse(raw!) as RecoverOrder);
  const listeners = takeover?.listeners ?? order.listeners.map((key, i) => ({ key, fd: FIRST_LISTENER_FD + i }));
  const clean = (why: string): Recovery => ({ order, listeners, state: undefined, cleanStart: why });
  let text: string;
  try {
    text = readFileSync(stateFile, 'utf8');
  } catch (err) {
    return clean(`no state file ${stateFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: StateDocument;
  try {
    doc = JSON.parse(text) as StateDocument;
  } catch {
    return clean(`the state file ${stateFile} is corrupt`);
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.state !== 'object' || doc.state === null || typeof doc.state.masterGeneration !== 'number') {
    return clean(`the state file ${stateFile} is corrupt`);
  }
  if (doc.graft !== graftVersion()) return clean(`the state file ${stateFile} is from graft ${String(doc.graft)}, this is ${graftVersion()}`);
  if (doc.pid !== order.from) return clean(`the state file ${stateFile} is another master's (pid ${doc.pid}, not ${order.from})`);
  return { order, listeners, state: { ...doc.state, from: order.from, listeners, masterGeneration: doc.state.masterGeneration + 1 } };
}
