import type { SerializedError } from '../core/errors.js';

/**
 * The control socket speaks one JSON line each way per connection: a request,
 * then the outcome once the master has acted on it.
 */
export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'reload' }
  | { cmd: 'stop'; fast?: boolean }
  | { cmd: 'scale'; workers?: number; delta?: number }
  | { cmd: 'upgrade' }
  | { cmd: 'swap'; module?: string }
  | { cmd: 'deploy'; source: string }
  | { cmd: 'rollback'; id?: string; withConfig?: boolean; toDisk?: boolean }
  | { cmd: 'releases' }
  | { cmd: 'config'; action: 'show' | 'history' }
  | { cmd: 'config'; action: 'apply'; set?: string[]; unset?: string[]; reset?: boolean }
  | { cmd: 'config'; action: 'check'; file: string };

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: SerializedError };

export const CONTROL_COMMANDS = ['status', 'reload', 'stop', 'scale', 'upgrade', 'config', 'swap', 'deploy', 'rollback', 'releases'] as const;
