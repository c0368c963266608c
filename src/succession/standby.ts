import type { FromKeeper, ToKeeper } from './keeper-link.js';
import type { RecoverOrder } from './recovery.js';

/**
 * The standby master: a master process the keeper starts ahead of need, with
 * graft loaded and its command line read, that waits. When the master in
 * control crashes, the keeper gives the standby the kept listening sockets and
 * the recover order, and it carries on from the state file at once, without
 * the seconds' fraction a new Node process takes to start and load graft: a
 * crash then costs what booting the workers costs. A standby serves nothing
 * and reads no config until it takes over (the config it starts from is the
 * state file's, read then); the keeper replaces it after every upgrade, so it
 * runs the code on disk.
 */
export const STANDBY_ENV = 'GRAFT_STANDBY';

/** What a standby is given when it takes over. */
export interface Takeover {
  order: RecoverOrder;
  /** The kept listening sockets, by key, as fds of this process (their handles stay open for good: the master owns the fds). */
  listeners: Array<{ key: string; fd: number }>;
}

// Read once and taken out of the environment: workers must not inherit it.
const standby = process.env[STANDBY_ENV] === '1';
delete process.env[STANDBY_ENV];

/** The received socket handles: never closed here, the master's listeners own their fds. */
const kept: unknown[] = [];

/** True in a master process the keeper started as its standby. */
export function isStandby(): boolean {
  return standby;
}

/**
 * Wait until the keeper asks this standby to take over; a standby whose
 * keeper is gone (its channel closed) has nothing to take over and exits.
 */
export function waitAsStandby(service: string): Promise<Takeover> {
  process.title = `graft standby ${service}`;
  return new Promise((resolve) => {
    const listeners: Takeover['listeners'] = [];
    const onMessage = (message: FromKeeper, handle: unknown) => {
      if (message?.graft === 'standby-listener') {
        const fd = (handle as { fd?: unknown } | undefined)?.fd;
        if (typeof fd === 'number' && fd >= 0) {
          kept.push(handle);
          listeners.push({ key: message.key, fd });
        }
      } else if (message?.graft === 'standby-take') {
        process.off('message', onMessage);
        process.off('disconnect', onGone);
        resolve({ order: message.order, listeners });
      }
    };
    const onGone = () => process.exit(0);
    // The keeper may have gone while this process was still loading.
    if (!process.connected) return onGone();
    process.on('message', onMessage);
    process.once('disconnect', onGone);
    process.send!({ graft: 'standby-ready' } satisfies ToKeeper);
  });
}
