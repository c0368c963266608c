import type { MasterEvent } from './observers.js';

type ReloadEvent = Extract<MasterEvent, { type: 'reload' }>;
type SwapEvent = Extract<MasterEvent, { type: 'swap' }>;
type RestartEvent = Extract<MasterEvent, { type: 'worker-restart' }>;

export type Recorded<E> = Omit<E, 'type'> & { at: string };

/** A reload as `graft status` shows it: who asked (`signal`, `config v7`, `swap: fallback`…), its outcome, the generation it made. */
export type ReloadRecord = Recorded<ReloadEvent>;

export interface RecentActivity {
  reloads: Array<Recorded<ReloadEvent>>;
  swaps: Array<Recorded<SwapEvent>>;
  restarts: Array<Recorded<RestartEvent>>;
}

/** How many of each kind the master remembers: enough for a page, bounded for a master that runs for months. */
const KEPT = 20;

/**
 * The master's recent reloads, swaps and worker replacements, newest first,
 * with their outcome and duration (the config history is the coordinator's).
 * An observer of master events; memory stays bounded however long it runs.
 */
export class Activity {
  private readonly recent: RecentActivity;

  /** @param inherited what a predecessor master recorded (`graft upgrade`). */
  constructor(inherited?: RecentActivity) {
    this.recent = { reloads: [...(inherited?.reloads ?? [])], swaps: [...(inherited?.swaps ?? [])], restarts: [...(inherited?.restarts ?? [])] };
  }

  readonly observe = (event: MasterEvent): void => {
    const at = new Date().toISOString();
    const { type: _t, ...fields } = event;
    if (event.type === 'reload') push(this.recent.reloads, { at, ...(fields as Omit<ReloadEvent, 'type'>) });
    else if (event.type === 'swap') push(this.recent.swaps, { at, ...(fields as Omit<SwapEvent, 'type'>) });
    else if (event.type === 'worker-restart') push(this.recent.restarts, { at, ...(fields as Omit<RestartEvent, 'type'>) });
  };

  /** The one record of the last reload: it survives `graft upgrade` with the rest. */
  get lastReload(): ReloadRecord | undefined {
    return this.recent.reloads[0];
  }

  snapshot(): RecentActivity {
    return { reloads: [...this.recent.reloads], swaps: [...this.recent.swaps], restarts: [...this.recent.restarts] };
  }
}

function push<T>(list: T[], item: T): void {
  list.unshift(item);
  if (list.length > KEPT) list.length = KEPT;
}
