/**
 * The one place in bench/ that imports graft's source: what the benchmarks,
 * their apps and their child processes use of it, re-exported.
 */
import { join } from 'node:path';
import { root } from './paths.js';

export { config, ConfigStore, defineService, swappable } from '../../src/index.js';
export type { Snapshot } from '../../src/index.js';
export { pendingRetired } from '../../src/swap/leak-watch.js';
export { sendControl } from '../../src/control/client.js';
export type { ControlRequest } from '../../src/control/protocol.js';
export type { ApplyOutcome } from '../../src/config/history.js';
export type { SwapOutcome } from '../../src/master/code-swapper.js';

/** graft's CLI (`node --import tsx <graftCli> start …`). */
export const graftCli = join(root, 'src/cli/main.ts');
