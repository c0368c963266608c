/**
 * Every failure graft reports carries a stable code a user can search for and a
 * sentence that says what to do. This table is the one list of codes: a code
 * never changes meaning once published, and a failure is never reported under
 * another failure's code (wrap it, keeping the original as the cause).
 */
export const ErrorCodes = {
  GRAFT_UNKNOWN_COMMAND: 'unknown command',
  GRAFT_UNKNOWN_FLAG: 'unknown or malformed flag',
  GRAFT_BAD_ARGUMENT: 'invalid argument value',
  GRAFT_ENTRY_NOT_FOUND: 'entry module not found',
  GRAFT_ENTRY_UNREADABLE: 'entry module not readable',
  GRAFT_PORT_IN_USE: 'port already in use',
  GRAFT_METRICS_PORT_IN_USE: 'the metrics or status page port is already in use',
  GRAFT_BOOT_FAILED: 'the application threw while booting',
  GRAFT_WORKER_EXITED: 'a worker exited before it was ready',
  GRAFT_READY_TIMEOUT: 'a worker was not ready in time',
  GRAFT_WORKER_UNREACHABLE: 'a worker did not answer the master',
  GRAFT_NO_MASTER: 'no running master found',
  GRAFT_AMBIGUOUS_MASTER: 'several masters match',
  GRAFT_ALREADY_RUNNING: 'a master already runs for this entry',
  GRAFT_NAME_TAKEN: 'another running master holds the service name',
  GRAFT_NO_SERVICE: 'no running service by that name or entry',
  GRAFT_LOG_DIR: 'the log directory or log file cannot be written',
  GRAFT_NO_LOG_FILES: 'the service writes no log files',
  GRAFT_SOCKET_UNUSABLE: 'the control socket cannot be created',
  GRAFT_STOPPING: 'stopping: nothing new is started',
  GRAFT_UPGRADE_FAILED: 'master upgrade failed',
  GRAFT_CONTROL_FAILED: 'control socket request failed',
  GRAFT_NOT_LIVE: 'nothing is live in this slot yet',
  GRAFT_DRAIN_TIMEOUT: 'a retired generation did not drain in time',
  GRAFT_STREAM_ENDED: 'the app wrote to an event stream graft ended on a drain',
  GRAFT_CRASH_LOOP: 'worker crash loop',
  GRAFT_WORKER_BLOCKED: 'worker event loop blocked',
  GRAFT_WORKER_MEMORY: 'a worker stayed over --max-memory',
  GRAFT_MAX_RESTARTS: 'a generation used up --max-restarts',
  GRAFT_NOT_BUILT: 'the graft package was not built',
  GRAFT_NOT_INSTALLED: 'a dependency of the graft package is not installed',
  GRAFT_CONFIG_PARSE: 'a config file does not parse',
  GRAFT_CONFIG_UNREADABLE: 'a config file cannot be read',
  GRAFT_CONFIG_TOO_LARGE: 'a config file is too large',
  GRAFT_CONFIG_INVALID: 'the config fails the schema',
  GRAFT_CONFIG_NOT_READY: 'the config is not loaded yet',
  GRAFT_CONFIG_APPLY_FAILED: 'a worker failed to apply the config',
  GRAFT_CONFIG_ABORTED: 'a prepared config version was dropped',
  GRAFT_BAD_KEY_PATH: 'a key path is malformed',
  GRAFT_THREAD_BUSY: 'a worker thread did not take a config version in time',
  GRAFT_SWAP_LOAD: 'a new module generation failed to load',
  GRAFT_SWAP_MIGRATE: 'migrate() of a new module generation failed',
  GRAFT_SWAP_VERIFY: 'verify() of a new module generation failed',
  GRAFT_SWAP_NOT_SWAPPABLE: 'the change cannot be swapped in place',
  GRAFT_SWAP_ABORTED: 'a prepared module generation was dropped',
  GRAFT_SWAP_LEAK: 'a retired module generation is still reachable',
  GRAFT_STORE_URL: 'a config store address graft does not know',
  GRAFT_STORE_UNREACHABLE: 'a config store cannot be reached',
  GRAFT_STORE_AUTH: 'a config store or bus refused the credentials',
  GRAFT_STORE_NOT_FOUND: 'a bucket, prefix or key does not exist in the store',
  GRAFT_BUS_URL: 'a bus address graft does not know',
  GRAFT_BUS_KEY: 'the key that signs or checks bus orders cannot be used',
  GRAFT_BUS_UNREACHABLE: 'the message bus cannot be reached',
  GRAFT_ORDER_REFUSED: 'a bus order was refused',
  GRAFT_ORDER_FORGED: 'an answer saying a bus order was carried out is not signed with the fleet key: something other than a graft master answered',
  GRAFT_ORDER_TIMEOUT: 'a host did not answer an order in time',
  GRAFT_FLEET_URL: 'a fleet address graft does not know',
  GRAFT_FLEET_EMPTY: 'no host of the service is registered',
  GRAFT_FLEET_BUSY: 'no rollout slot came free in time',
  GRAFT_FLEET_FAILED: 'a fleet rollout stopped on a failure',
  GRAFT_FLEET_NO_ORDERS: 'a registered host takes no orders on the fleet server',
  GRAFT_KEEPER_GONE: 'the keeper (the graft start process) died; the master stops',
  GRAFT_MASTER_RESTARTED: 'the master crashed and the keeper started a new one on the same sockets',
  GRAFT_MASTER_CRASH_LOOP: 'the master kept crashing; the keeper stopped restarting it',
  GRAFT_STATE_FILE: 'the state a restarted master would start from cannot be written or read',
  GRAFT_START_FAILED: 'the service did not start',
  GRAFT_RELEASE_SOURCE: 'what was given to deploy is not a directory or a tarball that unpacks',
  GRAFT_RELEASE_NO_ENTRY: "a release does not hold the service's entry",
  GRAFT_RELEASE_UNKNOWN: 'no such release',
  GRAFT_RELEASE_TAMPERED: 'a release was changed after it was staged',
  GRAFT_NO_PREVIOUS_RELEASE: 'there is no good release to roll back to',
  GRAFT_UNHEALTHY: 'a new generation turned unhealthy within --min-healthy-time',
  GRAFT_ROLLED_BACK: 'a new generation was unhealthy and was rolled back',
  GRAFT_DEPLOY_BUSY: 'a deploy or rollback is already under way',
  GRAFT_INTERNAL: 'an unexpected failure inside graft',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}

export interface SerializedError {
  code: ErrorCode;
  message: string;
  detail?: string;
}

export class GraftError extends Error {
  readonly code: ErrorCode;
  /** Extra text for humans, e.g. the worker's stack trace. */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GraftError';
    this.code = code;
    this.detail = options?.detail;
  }

  toJSON(): SerializedError {
    return { code: this.code, message: this.message, ...(this.detail ? { detail: this.detail } : {}) };
  }

  /** An error that crossed IPC or the control socket (possibly from a master of another graft version). */
  static from(value: { code: string; message: string; detail?: string }): GraftError {
    if (isErrorCode(value.code)) return new GraftError(value.code, value.message, value.detail ? { detail: value.detail } : undefined);
    return new GraftError('GRAFT_INTERNAL', `${value.code}: ${value.message}`, value.detail ? { detail: value.detail } : undefined);
  }

  /** A GraftError as it is, anything else as GRAFT_INTERNAL with the original kept as the cause. */
  static wrap(err: unknown, context: string): GraftError {
    if (err instanceof GraftError) return err;
    return new GraftError('GRAFT_INTERNAL', `${context}: ${errorMessage(err)}`, { cause: err });
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The fields a log record carries for a failure: its code (when graft knows it) and its message. */
export function errorFields(err: unknown): { code?: ErrorCode; error: string; detail?: string } {
  if (!(err instanceof GraftError)) return { error: errorMessage(err) };
  return { code: err.code, error: err.message, ...(err.detail ? { detail: err.detail } : {}) };
}
