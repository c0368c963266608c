import type { BusStatus } from '../bus/order-trigger.js';
import type { HistoryEntry } from '../config/history.js';
import type { SourceStatus } from '../config/sources/source.js';
import type { MembershipStatus } from '../fleet/membership.js';
import type { LogTarget } from '../logs/service-log.js';
import type { ReloadRecord } from '../observe/activity.js';
import type { PoolStatus } from '../pool/worker-pool.js';
import type { RestartPolicy } from '../pool/restart-policy.js';

export type MasterState = 'starting' | 'running' | 'stopping';

/** What `graft status --json` prints, the status page shows and the fleet registry is written from. */
export interface MasterStatus {
  master: {
    pid: number;
    /** The `graft start` process that started this master and stays for the service's life (its pid never changes). */
    keeper: number | undefined;
    /** How this service was started: what `graft systemd` writes into a unit. */
    launch: { cwd: string; node: string; args: string[]; service: string; drainTimeoutMs: number };
    uptimeMs: number;
    /** The master process's own memory: resident set and V8 heap, in bytes. */
    memory: { rss: number; heapUsed: number; heapTotal: number };
    entry: string;
    port: number;
    socket: string;
    state: MasterState;
    /** This master's place in its line of upgrades (1 for a master started by hand). */
    masterGeneration: number | undefined;
    /** How many times the keeper restarted a crashed master of this service. */
    restarts: number;
    /** The command the arbiter carries out now, and how many wait. */
    busy: string | undefined;
    queued: number;
    lastReload: ReloadRecord | undefined;
    config: { version: number; hash: string; source: string; lastRejected: HistoryEntry | undefined; stores: SourceStatus[] } | undefined;
    /** The buses this master takes orders from (--bus), and whether each is connected. */
    bus?: BusStatus[];
    /** Ids of the bus orders carried out lately, newest last (the fleet registry's proof that this host did them). */
    orders: string[];
    /** The fleet registry this master registers in (--fleet), and whether its entry is written. */
    fleet?: MembershipStatus;
    /** The service's name (--name), as `graft ls` and the control commands know it. */
    name: string;
    /** Where its lines go. */
    logs: LogTarget;
    /** The restart policy workers run under. */
    policy: RestartPolicy;
    /** Where Prometheus scrapes (--metrics) and where the live status page is (--metrics or --dashboard). */
    http?: { metrics?: string; dashboard: string };
  } & Omit<PoolStatus, 'workers'>;
  workers: PoolStatus['workers'];
}
