import { swappables } from '../swap/swappable.js';
import { config, heartbeatMs, registry, runtime, send } from './runtime.js';

let rss = 0;

/** Report in-flight work, RSS, the config version and the code generations to the master. */
export function heartbeat(): void {
  if (!runtime.ready) return;
  const modules = swappables().map((h) => `${h.name}@${h.generation ?? '-'}`);
  send({ graft: 'heartbeat', ...registry.stats(), rss: residentSetSize(), configVersion: config.loaded ? config.version : 0, ...(modules.length ? { modules } : {}) });
}

/** Read from /proc, which fails with EMFILE when the worker is out of file descriptors: the last value stands then. */
function residentSetSize(): number {
  try {
    rss = process.memoryUsage.rss();
  } catch {
    // out of descriptors: the heartbeat must go on, or the master takes the worker for blocked
  }
  return rss;
}

export function startHeartbeats(): void {
  heartbeat();
  setInterval(heartbeat, heartbeatMs).unref();
}
