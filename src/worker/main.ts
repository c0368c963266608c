/**
 * Worker process entry (cluster exec). A warm worker, started by a standby
 * master ahead of need, loads graft's worker runtime and waits until a
 * master takes it into a generation (warm.ts); then every worker runs
 * worker.ts, which first reads who it is from its environment.
 */
import { isWarm, waitUntilTaken } from './warm.js';

const [{ runWorker }] = await Promise.all([import('./worker.js'), isWarm() ? waitUntilTaken() : undefined]);
runWorker();
