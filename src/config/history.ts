import type { ConfigPayload } from '../core/ipc.js';

/** One config version the master tried: what `graft config history` and the status page show. */
export interface HistoryEntry {
  version: number;
  at: string;
  source: string;
  changed: string[];
  accepted: boolean;
  mode?: 'in-place' | 'reload';
  code?: string;
  error?: string;
}

export interface ApplyOutcome {
  version: number;
  changed: string[];
  mode: 'in-place' | 'reload' | 'unchanged';
  workers: Array<{ pid: number; generation: number; configVersion: number }>;
  replaced: Array<{ pid: number; error: string }>;
}

/** What a master hands its successor (graft upgrade), so versions and history go on. */
export interface ConfigInheritance {
  live: ConfigPayload;
  history: HistoryEntry[];
}
