import type { BusOptions } from '../bus/bus-triggers.js';
import type { ReadyMode } from '../core/ipc.js';
import type { LogTarget } from '../logs/service-log.js';
import type { FleetAddress } from '../net/fleet-url.js';
import type { ConfigArg } from '../net/source-url.js';
import type { HttpAddress } from '../observe/http-endpoint.js';
import type { RestartPolicy } from '../pool/restart-policy.js';
import type { MasterPaths } from '../registry/paths.js';
import type { HealthOptions } from '../releases/health-gate.js';
import type { Takeover } from '../succession/standby.js';

/** What `graft start` gives a master: its entry, its flags, and where its runtime files go. */
export interface MasterOptions {
  /** Set in the keeper's standby master once it takes over from a master that crashed. */
  takeover?: Takeover | undefined;
  entry: string;
  /** What follows `--` on graft start's command line: the app's process.argv after the entry. */
  args?: string[];
  cwd: string;
  workers: number;
  port: number;
  paths: MasterPaths;
  /** How long a new worker may take to become ready; also how long a ready one may go without a heartbeat (--timeout). */
  readyTimeoutMs: number;
  /** When a worker whose entry is not a defineService is ready (--ready). */
  ready: ReadyMode;
  /** `--sticky`: each client's connections go to one worker (Socket.IO's long polling), not round-robin. */
  sticky?: boolean;
  /** How long a retired worker may drain before it is killed (--graceful-timeout). */
  drainTimeoutMs: number;
  /** A draining worker closes a keep-alive connection idle this long. */
  idleCloseMs: number;
  /** How long a closing connection keeps reading before it is released. */
  lingerMs: number;
  watch: string | undefined;
  /** Serve the entry as a swappable handler; code changes swap in place. */
  swap: boolean;
  /** Load a TypeScript entry with tsx in every worker instead of compiling it in the master (--tsx). */
  tsx: boolean;
  /** Config files and stores (--config), lowest layer first. */
  config: ConfigArg[];
  /** Where store sources cache their last good snapshot (default: beside the control socket). */
  configCache: string | undefined;
  /** `--set key.path=value` overrides from the command line. */
  overrides: string[];
  /** Set when -w / -p were given: the config's graft.workers / graft.port do not apply. */
  fixed: { port: boolean; workers: boolean };
  /** The service's name (`--name`): every master of a fleet runs the same one. */
  service: string;
  /** This master's name in the fleet (`--host-id`). */
  hostId: string;
  /** Register in this fleet store (`--fleet`). */
  fleet: FleetAddress | undefined;
  /** Take signed orders from NATS and/or RabbitMQ (--bus). */
  bus?: BusOptions | undefined;
  /** Where graft's and the app's lines go: a rotated log file (--log-dir), or stdout and stderr. */
  logs: LogTarget;
  /** --max-memory, --restart-delay, --max-restarts, --min-uptime. */
  policy: RestartPolicy;
  /** Serve Prometheus metrics at /metrics here (--metrics); the status page too, unless --dashboard puts it elsewhere. */
  metrics?: HttpAddress | undefined;
  /** Serve the live status page here (--dashboard). */
  dashboard?: HttpAddress | undefined;
  /** --keep-releases: how many good releases `graft deploy` keeps. */
  keepReleases: number;
  /** --min-healthy-time, --health-url, --max-error-rate: the health gate a deployed release passes or is rolled back. */
  health: HealthOptions;
}
